"""Fakes and builders shared by the tests: Stripe, Twilio, Temporal activities, PDFs, portal
data."""
