"""HTTP helpers shared by pages, API and webhooks: app keys, errors, security headers,
access log, metrics, branding, codec, the portal session."""
