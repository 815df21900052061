"""Inbound webhooks: Twilio SMS and Stripe events."""
