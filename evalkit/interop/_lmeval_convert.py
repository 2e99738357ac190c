"""lm-eval's results, as loose dicts, turned into evalkit's typed record parts.

Pure functions over plain data (no lm-eval import), so the mapping rules — which metric
is a bounded fraction, what its interval is, how a sample is logged — are tested alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from evalkit.errors import SpecError
from evalkit.intervals import Z95, wilson_interval
from evalkit.paths import portable_locator
from evalkit.results.schema import DataSourceFacts, MetricValue, SampleLog

logger = logging.getLogger(__name__)

# Fractions in [0, 1] (mcc in [-1, 1]): the accuracies a leaderboard may average across tasks.
BOUNDED_METRICS = frozenset(
    {
        "acc",
        "acc_norm",
        "acc_bytes",
        "acc_mutual_info",
        "acc_all",
        "exact_match",
        "em",
        "f1",
        "mcc",
        "contains",
    }
)
# Used only when lm-eval's own higher_is_better says nothing about a metric.
LOWER_IS_BETTER = frozenset(
    {"perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte", "ter", "brier_score"}
)
# `datasets` builders that read local files named in dataset_kwargs rather than a hub repository.
FILE_BUILDERS = frozenset({"json", "csv", "parquet", "arrow", "text", "pandas", "xml", "webdataset"})


def metric_name(metric: str, filter_name: str) -> str:
    """evalkit's name for an lm-eval metric: `acc` unfiltered, else lm-eval's `exact_match,strict-match`."""
    return metric if filter_name == "none" else f"{metric},{filter_name}"


def convert_metrics(
    task_results: Mapping[str, Any], higher_is_better: Mapping[str, Any], n: int
) -> dict[str, MetricValue]:
    """Every `<metric>,<filter>` value of one task, with lm-eval's `<metric>_stderr,<filter>` beside it."""
    metrics: dict[str, MetricValue] = {}
    for key, value in task_results.items():
        metric, comma, filter_name = key.partition(",")
        if not comma or metric.endswith("_stderr"):
            continue  # "alias", "name", "sample_len", and the stderr keys read below
        name = metric_name(metric, filter_name)
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            logger.warning(
                "lm-eval metric %s is not a number (%r); it is left out of the record", name, value
            )
            continue
        stderr = _finite(task_results.get(f"{metric}_stderr,{filter_name}"))
        better = higher_is_better.get(metric)
        bounded = metric in BOUNDED_METRICS
        metrics[name] = MetricValue(
            value=float(value),
            stderr=stderr,  # lm-eval's own, for parity with its reports
            ci95=_interval(float(value), stderr, n, bounded),
            n=n,
            higher_is_better=better if isinstance(better, bool) else metric not in LOWER_IS_BETTER,
            bounded=bounded,
        )
    return metrics


def primary_metric(
    metric_list: Sequence[Mapping[str, Any]] | None, metrics: Mapping[str, MetricValue]
) -> str:
    """lm-eval's first listed metric (under its first filter); the first reported one for Python tasks."""
    if not metrics:
        raise SpecError("the lm-eval task reported no numeric metric")
    for entry in metric_list or []:
        wanted = str(entry.get("metric"))
        for name in metrics:
            if name == wanted or name.startswith(f"{wanted},"):
                return name
    return next(iter(metrics))


def docs_sha256(docs: Iterable[Any]) -> str:
    """sha256 over the evaluated documents, one canonical JSON line each (in evaluation order)."""
    digest = hashlib.sha256()
    for doc in docs:
        digest.update(_canonical(doc).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def task_fingerprint(config: Mapping[str, Any], content_sha256: str) -> str:
    """sha256 of lm-eval's dumped task config and of the documents evaluated.

    `metadata.config_source` (where the YAML happened to lie on this machine) is left out,
    so the same task and data give the same fingerprint everywhere.
    """
    portable = dict(config)
    metadata = portable.get("metadata")
    if isinstance(metadata, Mapping):
        portable["metadata"] = {k: v for k, v in metadata.items() if k != "config_source"}
    payload = _canonical(portable) + "\n" + content_sha256
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def source_facts(
    config: Mapping[str, Any],
    split: str,
    num_documents: int,
    content_sha256: str,
    task_folder: Path | None = None,
) -> DataSourceFacts:
    """Which data lm-eval read, as its task config names it, with local paths as portable locators
    (`task:REL` inside `task_folder`, the task YAML's folder; see evalkit.paths)."""
    path = str(config.get("dataset_path") or "")
    dataset_name = config.get("dataset_name")
    kwargs = config.get("dataset_kwargs") or {}
    hub_id = None
    if not path:
        data_format, location = "python", str(config.get("task", ""))
    elif path in FILE_BUILDERS:
        files = kwargs.get("data_files", kwargs.get("data_dir"))
        files = _portable_files(files, task_folder)
        data_format, location = path, _canonical(files) if not isinstance(files, str) else files
    elif Path(path).expanduser().exists():
        data_format, location = "local", _portable_path(path, task_folder)
    else:
        data_format, location, hub_id = "hub", path, path
    if dataset_name:
        location = f"{location}:{dataset_name}"
    return DataSourceFacts(
        origin="lm-eval",
        format=data_format,
        location=location,
        split=split,
        hub_id=hub_id,
        version=str(kwargs["revision"]) if kwargs.get("revision") else None,
        num_documents=num_documents,
        content_sha256=content_sha256,
    )


def _portable_files(files: Any, task_folder: Path | None) -> Any:
    """`data_files` as the YAML gives them (a path, a list or a split mapping), each absolute
    path replaced by its locator; relative paths and URLs are already the same on every machine."""
    if isinstance(files, str):
        return _portable_path(files, task_folder) if Path(files).expanduser().is_absolute() else files
    if isinstance(files, Mapping):
        return {key: _portable_files(value, task_folder) for key, value in files.items()}
    if isinstance(files, list | tuple):
        return [_portable_files(value, task_folder) for value in files]
    return files


def _portable_path(path: str, task_folder: Path | None) -> str:
    return portable_locator(path, relative_to=("task", task_folder) if task_folder is not None else None)


def sample_logs(
    samples: Sequence[Mapping[str, Any]],
    output_type: str,
    choices_of: Callable[[Any], Sequence[str]] | None,
) -> list[SampleLog]:
    """One SampleLog per document (and per filter, when a task has several) from lm-eval's logged samples."""
    several_filters = len({s.get("filter", "none") for s in samples}) > 1
    logs = []
    for sample in samples:
        filter_name = str(sample.get("filter", "none"))
        arguments = [tuple(a) for a in sample.get("arguments", [])]
        responses = list(sample.get("filtered_resps", []))
        scores, items = {}, {}
        for metric in sample.get("metrics", []):
            value = sample.get(metric)
            if isinstance(value, int | float) and not isinstance(value, bool):
                scores[metric] = float(value)
            else:  # e.g. f1's (gold, prediction) pairs, aggregated over the corpus later
                items[metric] = _jsonable(value)
        extra: dict[str, Any] = {
            "doc_id": sample.get("doc_id"),
            "filter": filter_name,
            "doc_hash": sample.get("doc_hash"),
            "prompt_hash": sample.get("prompt_hash"),
        }
        response: str | list[float] | None
        if output_type == "generate_until":
            response = _text(responses[0]) if responses else None
        else:
            response = [float(_first(r)) for r in responses]
            if output_type in ("multiple_choice", "loglikelihood"):
                extra["continuations"] = [str(a[1]) for a in arguments if len(a) > 1]
                extra["is_greedy"] = [bool(r[1]) for r in responses if isinstance(r, Sequence) and len(r) > 1]
        if items:
            extra["metric_items"] = items
        doc_id = sample.get("doc_id")
        logs.append(
            SampleLog(
                sample_id=f"{doc_id}:{filter_name}" if several_filters else str(doc_id),
                prompt=str(arguments[0][0]) if arguments else "",
                target=_target(sample.get("target"), sample.get("doc"), output_type, choices_of),
                response=response,
                scores=scores,
                extra=extra,
            )
        )
    return logs


def _target(
    target: Any, doc: Any, output_type: str, choices_of: Callable[[Any], Sequence[str]] | None
) -> str | list[str]:
    """The gold answer as text: a multiple-choice index becomes the choice it points at."""
    if output_type == "multiple_choice" and choices_of is not None:
        choices = list(choices_of(doc))
        if isinstance(target, int) and not isinstance(target, bool) and 0 <= target < len(choices):
            return str(choices[target])
        if isinstance(target, list) and all(isinstance(t, int) and 0 <= t < len(choices) for t in target):
            return [str(choices[t]) for t in target]
    if isinstance(target, list):
        return [str(t) for t in target]
    return str(target)


def _first(response: Any) -> Any:
    return response[0] if isinstance(response, list | tuple) else response


def _text(response: Any) -> str:
    return response if isinstance(response, str) else _canonical(response)


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None  # lm-eval writes "N/A" where it could not estimate one
    return float(value)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def _jsonable(value: Any) -> Any:
    return json.loads(_canonical(value))


def _interval(value: float, stderr: float | None, n: int, bounded: bool) -> tuple[float, float] | None:
    """Wilson's interval for a share (a Wald one leaves [0, 1] at small n or near 0 % and 100 %);
    the normal one from lm-eval's standard error otherwise."""
    if bounded and 0.0 <= value <= 1.0 and n > 0:
        return wilson_interval(value, n)
    if stderr is None:
        return None
    return (value - Z95 * stderr, value + Z95 * stderr)
