"""Where evalkit keeps what it can recompute: one cache folder for every part."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "EVALKIT_CACHE_DIR"


def cache_dir() -> Path:
    """`$EVALKIT_CACHE_DIR`, else `~/.cache/evalkit` (created on demand by the callers).

    Responses, converted models, assembled GGUF files, file hashes and host peaks live under it.
    """
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "evalkit"
