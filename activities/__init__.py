"""Temporal activities: database, notification and PDF side effects for Portico workflows."""
