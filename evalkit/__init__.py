"""evalkit: evaluate small language models on accuracy, long context and efficiency.

The package root stays import-light (no torch, transformers or pandas) so the CLI starts
instantly; the public API lives in the sub-packages and is re-exported lazily here.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "evaluate": "evalkit.runner",
    "load_model": "evalkit.backends",
    "default_catalogue": "evalkit.specs",
    "ResultsStore": "evalkit.results",
    "leaderboard_frame": "evalkit.report",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'evalkit' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
