"""Keys kept in files beside the database, made once on first use (mode 0600)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def persisted_key(path: Path, make: Callable[[], str]) -> str:
    """The key in `path`, made with `make` and written there first if absent."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole to a private (0600) temporary file, then linked into place: of
    # several processes starting at once, one link wins and every process reads its key.
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(make())
        with contextlib.suppress(FileExistsError):  # another process got there first
            os.link(temporary, path)
    finally:
        os.unlink(temporary)
    return path.read_text().strip()
