"""Portico core: settings, storage, tokens, CLI and the dev runner shared by every layer."""
