"""Run records and per-sample logs fabricated in code, for the report tests (no models needed)."""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from evalkit.cli.main import main
from evalkit.results import (
    EfficiencyFigures,
    LongContextMatrix,
    MetricValue,
    ResultsStore,
    RunRecord,
    SampleLog,
)

GOLDEN = Path(__file__).parent / "golden"
BASE = json.loads((GOLDEN / "run_record_v2.jsonl").read_text(encoding="utf-8").splitlines()[0])
DAY = "2025-01-02T{}:00+00:00"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def perplexity(value: float, n: int = 60) -> MetricValue:
    return MetricValue(value=value, stderr=None, ci95=None, n=n, higher_is_better=False, bounded=False)


def accuracy(value: float, n: int, chance: float | None = None) -> MetricValue:
    return MetricValue(
        value=value,
        stderr=math.sqrt(value * (1 - value) / n),
        ci95=None,
        n=n,
        higher_is_better=True,
        bounded=True,
        chance=chance,
    )


def make_record(
    model: str,
    task: str,
    metrics: Mapping[str, float | MetricValue],
    *,
    finished: str = DAY.format("10:00"),
    primary: str | None = None,
    model_fp: str | None = None,
    task_fp: str | None = None,
    run_id: str = "run-1",
    n: int = 400,
    error: str | None = None,
    chance: float | None = None,
    efficiency: EfficiencyFigures | Mapping[str, Any] | None = None,
    long_context: LongContextMatrix | None = None,
    bytes_on_disk: int | None = None,
) -> RunRecord:
    """A valid record built on the golden one; plain floats become bounded accuracies with stderr.

    ``efficiency`` may be a mapping of a few `EfficiencyFigures` fields (validated with the record).
    """
    values = {
        name: value if isinstance(value, MetricValue) else accuracy(value, n, chance)
        for name, value in metrics.items()
    }
    data = json.loads(json.dumps(BASE))
    data["model"].update(name=model, fingerprint=model_fp or sha(model))
    if bytes_on_disk is not None:
        data["model"]["bytes_on_disk"] = bytes_on_disk
    data["task"].update(
        name=task,
        fingerprint=task_fp or sha(task),
        primary_metric=primary or next(iter(values), "acc"),
        num_samples=n,
    )
    data["config"].update(num_documents=n)
    data.update(
        record_id=sha(f"{model}|{task}|{finished}|{run_id}")[:12],
        run_id=run_id,
        finished_at=finished,
        metrics={name: value.model_dump() for name, value in values.items()},
        status="error" if error else "ok",
        error=error,
        samples_file=None,
        efficiency=efficiency.model_dump() if isinstance(efficiency, EfficiencyFigures) else efficiency,
        long_context=None if long_context is None else long_context.model_dump(),
    )
    return RunRecord.model_validate(data)


def correct_on(n: int, correct: Iterable[int], metric: str = "acc") -> list[SampleLog]:
    """n samples with ids "0".."n-1", scoring 1 on the ids in ``correct`` and 0 elsewhere."""
    hits = set(correct)
    return scored([1.0 if i in hits else 0.0 for i in range(n)], metric)


def scored(values: Sequence[float], metric: str = "acc", ids: Sequence[str] | None = None) -> list[SampleLog]:
    ids = ids or [str(i) for i in range(len(values))]
    return [
        SampleLog(sample_id=sample_id, prompt=f"q{sample_id}", target="a", response=None, scores={metric: v})
        for sample_id, v in zip(ids, values, strict=True)
    ]


def store_with(
    root: Path,
    records: Sequence[RunRecord],
    samples: Mapping[str, Sequence[SampleLog]] | None = None,
) -> Path:
    """A results folder holding ``records``; ``samples`` maps a record id to its per-sample log."""
    store = ResultsStore(root)
    for record in records:
        store.append(record, (samples or {}).get(record.record_id))
    return store.root


def golden_set() -> list[RunRecord]:
    """A small, fixed store: three models, a perplexity task, a gap and a failed run."""
    return [
        make_record("smollm2-135m", "arc_easy", {"acc": 0.5625, "acc_norm": 0.5}, chance=0.25),
        make_record("smollm2-135m", "hellaswag", {"acc_norm": 0.41}),
        make_record("smollm2-135m", "wikitext", {"word_perplexity": perplexity(28.3125)}),
        make_record("gemma3-270m", "arc_easy", {"acc": 0.6075}, chance=0.25),
        make_record("gemma3-270m", "hellaswag", {"acc_norm": 0.455}),
        make_record("tiny-mamba", "arc_easy", {"acc": 0.3}, n=100, chance=0.25),
        make_record("tiny-mamba", "hellaswag", {}, primary="acc_norm", error="RuntimeError: out of memory"),
    ]


def golden_samples(records: Sequence[RunRecord]) -> dict[str, list[SampleLog]]:
    """Per-sample logs matching golden_set()'s values.

    gemma3 and smollm2 disagree on many samples both ways (arc_easy: 100 vs 118, hellaswag: 100 vs
    118), so neither task nor the pooled test separates them; tiny-mamba is wrong on 70 samples
    smollm2 gets right, which separates it clearly.
    """
    correct = {
        ("smollm2-135m", "arc_easy"): range(0, 225),
        ("gemma3-270m", "arc_easy"): range(100, 343),
        ("tiny-mamba", "arc_easy"): range(0, 30),
        ("smollm2-135m", "hellaswag"): range(0, 164),
        ("gemma3-270m", "hellaswag"): range(100, 282),
    }
    samples = {}
    for record in records:
        hits = correct.get((record.model.name, record.task.name))
        if hits is not None and record.status == "ok":
            metric = record.task.primary_metric
            samples[record.record_id] = correct_on(record.task.num_samples, hits, metric)
    return samples


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Through evalkit's real entry point, which turns EvalkitError into `error: ...` and exit 2."""
    old_argv = sys.argv
    sys.argv = ["evalkit", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = old_argv
    captured = capsys.readouterr()
    return code, captured.out, captured.err
