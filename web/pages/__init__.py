"""Client-facing HTML pages: the signing link, the portal, the invoice pay page."""
