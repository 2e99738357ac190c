"""Run lm-evaluation-harness tasks on evalkit backends, and record them as evalkit results.

Public API:
    run_lmeval_task(backend, task_name, ...) -> LmEvalOutcome
    EvalkitLM(backend, batch_size=...)        an lm-eval `LM` over any evalkit Backend
    hub_reachable()                           the cached probe that decides offline loading

lm-eval tasks are scored by lm-eval's own evaluator (prompts, few-shot sampling, filters,
metrics and standard errors are lm-eval's), so a score here is the score lm-eval reports
for the same model. Only the answers come from evalkit's backend. Importing this module is
cheap: lm-eval (and `datasets`, pandas...) is imported when a task runs or `EvalkitLM` is used.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit.backends.base import Backend
from evalkit.hub import hub_reachable
from evalkit.interop._lmeval_convert import (
    convert_metrics,
    docs_sha256,
    primary_metric,
    sample_logs,
    source_facts,
    task_fingerprint,
)
from evalkit.interop._lmeval_tasks import INCLUDE_ENV, PathLike, include_paths, load_task
from evalkit.paths import task_file_locator
from evalkit.results import MetricValue, SampleLog, TaskFacts

if TYPE_CHECKING:
    from lm_eval.api.task import Task

    from evalkit.interop._lmeval_lm import EvalkitLM

__all__ = [
    "INCLUDE_ENV",
    "LMEVAL_PREFIX",
    "EvalkitLM",
    "LmEvalOutcome",
    "hub_reachable",
    "run_lmeval_task",
]

LMEVAL_PREFIX = "lmeval:"
# lm-eval's own default, so bootstrapped standard errors (f1, mcc, bleu...) match its CLI.
DEFAULT_BOOTSTRAP_ITERS = 100_000

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LmEvalOutcome:
    """One lm-eval task's results in evalkit's types, ready to wrap into a RunRecord."""

    metrics: dict[str, MetricValue]
    task: TaskFacts
    samples: list[SampleLog]


def run_lmeval_task(
    backend: Backend,
    task_name: str,
    *,
    limit: int | None = None,
    num_fewshot: int | None = None,
    seed: int = 1234,
    batch_size: int = 16,
    include_path: PathLike | Sequence[PathLike] | None = None,
    bootstrap_iters: int = DEFAULT_BOOTSTRAP_ITERS,
) -> LmEvalOutcome:
    """Evaluate `backend` on the lm-eval task `task_name` (with or without the `lmeval:` prefix).

    limit: the first N documents of the evaluation split (lm-eval's `--limit`), None for all.
    num_fewshot: None keeps the task's default (0 if it has none); as in lm-eval, a task whose
        YAML fixes num_fewshot: 0 keeps 0. The number used is recorded in `TaskFacts.num_fewshot`.
    seed: seeds Python's and numpy's generators and lm-eval's few-shot sampler.
    include_path: folder(s) of the user's own lm-eval task YAML files, joined by those in
        $EVALKIT_LMEVAL_INCLUDE; their tasks take precedence over lm-eval's built-in ones.

    Raises UnknownNameError (with suggestions) for a name lm-eval does not know, SpecError
    for a group or tag of several tasks or a task that asks for sampling, and DataError
    when the task's dataset cannot be loaded (offline, it fails at once instead of retrying).
    """
    import lm_eval.evaluator
    import numpy as np

    from evalkit.interop._lmeval_lm import EvalkitLM

    name = task_name.removeprefix(LMEVAL_PREFIX)
    folders = include_paths(include_path)
    task, yaml_path = load_task(name, folders)
    _set_fewshot(task, num_fewshot, seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    key = task.task_name
    results = lm_eval.evaluator.evaluate(
        lm=EvalkitLM(backend, batch_size=batch_size),
        task_dict={"tasks": {key: task}, "groups": {}, "group_map": {}},
        limit=limit,
        bootstrap_iters=bootstrap_iters,
        log_samples=True,
    )
    assert results is not None  # lm-eval returns None only on ranks other than 0
    n = int(results["n-samples"][key]["effective"])
    metrics = convert_metrics(results["results"][key], results["higher_is_better"].get(key, {}), n)
    config = task.dump_config()
    docs = [doc for _, doc in task.doc_iterator(rank=0, limit=limit, world_size=1)]
    content_sha = docs_sha256(docs)
    split = task.config.test_split if task.has_test_docs() else task.config.validation_split
    facts = TaskFacts(
        name=f"{LMEVAL_PREFIX}{key}",
        kind="lmeval",
        fingerprint=task_fingerprint(config, content_sha),
        spec_file=task_file_locator(yaml_path, folders),
        primary_metric=primary_metric(task.config.metric_list, metrics),
        num_fewshot=int(task.get_config("num_fewshot") or 0),
        num_samples=n,
        source=source_facts(
            config, str(split), len(docs), content_sha, Path(yaml_path).parent if yaml_path else None
        ),
    )
    output_type = str(task.get_config("output_type"))
    choices = task.doc_to_choice if output_type == "multiple_choice" else None
    samples = sample_logs(results.get("samples", {}).get(key, []), output_type, choices)
    return LmEvalOutcome(metrics=metrics, task=facts, samples=samples)


def _set_fewshot(task: Task, num_fewshot: int | None, seed: int) -> None:
    """Apply the shot count the way lm-eval's `simple_evaluate` does, so scores match its CLI."""
    default = task.get_config("num_fewshot")
    if num_fewshot is None:
        if default is None:
            task.set_config(key="num_fewshot", value=0)
    elif default == 0 and num_fewshot != 0:
        logger.warning("lm-eval task %s fixes num_fewshot: 0; %d shots ignored", task.task_name, num_fewshot)
    else:
        task.set_config(key="num_fewshot", value=num_fewshot)
    task.set_fewshot_seed(seed=seed)


def __getattr__(name: str) -> Any:
    # EvalkitLM subclasses lm-eval's LM, so it exists only once lm-eval is imported.
    if name == "EvalkitLM":
        from evalkit.interop._lmeval_lm import EvalkitLM

        return EvalkitLM
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
