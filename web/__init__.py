"""The aiohttp web layer: signing pages, portal, staff API and webhooks."""
