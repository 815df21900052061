"""Inbound SMS/WhatsApp bots: parsing texts into commands and replying to clients and staff."""
