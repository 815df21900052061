"""Stored files (PDFs, uploads, signature images) under PORTICO_FILES_DIR, content-addressed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def save(self, folder: str, data: bytes, suffix: str) -> str:
        """Write `data` once under `folder/<sha256><suffix>`; returns the relative path."""
        digest = hashlib.sha256(data).hexdigest()
        relative = f"{folder}/{digest}{suffix}"
        path = self.root / relative
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return relative

    def path(self, relative: str) -> Path:
        resolved = (self.root / relative).resolve()
        if self.root.resolve() not in resolved.parents:
            raise ValueError("path escapes the files directory")
        return resolved

    def read(self, relative: str) -> bytes:
        return self.path(relative).read_bytes()

    def delete(self, relative: str) -> None:
        """Remove a stored file (gone already is fine): the caller knows no row names it."""
        self.path(relative).unlink(missing_ok=True)
