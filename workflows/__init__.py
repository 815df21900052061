"""Deterministic Temporal workflows (no I/O, clock or randomness outside `workflow.*`)."""
