"""Revision scripts, one per schema change, named `NNNN_slug.py` after their revision id."""
