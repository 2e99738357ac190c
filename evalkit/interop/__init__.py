"""Bridges to other evaluation harnesses (today: lm-evaluation-harness).

Public API:
    run_lmeval_task(backend, task_name, ...) -> LmEvalOutcome
    EvalkitLM                                 an lm-eval `LM` over any evalkit Backend (lazy)

Importing this package imports neither lm-eval nor torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evalkit.interop.lmeval import LMEVAL_PREFIX, LmEvalOutcome, hub_reachable, run_lmeval_task

if TYPE_CHECKING:
    from evalkit.interop._lmeval_lm import EvalkitLM

__all__ = ["LMEVAL_PREFIX", "EvalkitLM", "LmEvalOutcome", "hub_reachable", "run_lmeval_task"]


def __getattr__(name: str) -> Any:
    if name == "EvalkitLM":
        from evalkit.interop._lmeval_lm import EvalkitLM

        return EvalkitLM
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
