"""Wall time of `evalkit site` on a large fabricated store, against a 10 s budget.

    .venv/bin/python benchmarks/bench_site.py [--models 100] [--tasks 100] [--sample-logs 5] [--keep DIR]

Fabricates models × tasks records (10,000 by default) in a temporary store: every model has
efficiency figures (peak memory, time per token), a few models have decode curves, two tasks
carry long-context matrices, a handful of records have per-sample logs (1,000 samples each) and
a few runs failed. Fabrication is not timed; the build is timed from reading the store to the
last file written, exactly what `evalkit site` does. Prints the wall time and the ratio to the
budget (< 1 is within budget).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

BUDGET_S = 10.0
FAMILIES = ("transformer", "ssm", "hybrid")
LONG_CONTEXT_TASKS = 2


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _record(model: int, task: int, rng: random.Random, samples_file: str | None) -> dict[str, Any]:
    name, task_name = f"model-{model:03d}", f"task-{task:03d}"
    value = min(max(0.25 + 0.5 * model / 100 + rng.uniform(-0.1, 0.1), 0.0), 1.0)
    n = 1000 if samples_file else 200
    stderr = (value * (1 - value) / n) ** 0.5
    failed = (model * 7 + task) % 997 == 0
    efficiency: dict[str, Any] = {
        "peak_memory_bytes": (200 + 10 * model) * 2**20,
        "time_per_output_token_s": 0.005 + 0.0004 * model,
    }
    if model % 25 == 0 and task == 0:
        efficiency["curves"] = {
            "decode": [
                {
                    "context_length": length,
                    "time_per_output_token_s": 0.01 * (1 + length / 8192),
                    "peak_memory_bytes": (300 + length // 64) * 2**20,
                }
                for length in (512, 2048, 8192, 32768)
            ]
        }
    long_context = None
    if task < LONG_CONTEXT_TASKS:
        lengths = [1024, 4096, 16384, 65536]
        depths = [0.0, 0.25, 0.5, 0.75, 1.0]
        scores = [[max(0.0, 100 - model * 0.3 - i * 10 - d * 5) for i in range(4)] for d in range(5)]
        long_context = {
            "lengths": lengths,
            "depths": depths,
            "scores": scores,
            "threshold": 85.6,
            "effective_context_length": 4096,
        }
    finished = f"2025-05-{1 + task % 28:02d}T{model % 24:02d}:{task % 60:02d}:00+00:00"
    return {
        "schema_version": 1,
        "record_id": _sha(f"{model}/{task}")[:32],
        "run_id": f"run-{model:03d}",
        "started_at": finished,
        "finished_at": finished,
        "duration_s": 12.5,
        "evalkit_version": "0.1.0",
        "git_sha": "0" * 40,
        "model": {
            "name": name,
            "backend": "fake",
            "source": f"fake:{name}",
            "architecture": "LlamaForCausalLM",
            "family": FAMILIES[model % 3],
            "parameters": 10_000_000 * (1 + model),
            "dtype": "float32",
            "quantization": None if model % 10 else "int8",
            "bytes_on_disk": 40_000_000 * (1 + model),
            "fingerprint": _sha(name),
            "context_window": 8192,
        },
        "task": {
            "name": task_name,
            "kind": "multiple_choice",
            "fingerprint": _sha(task_name),
            "spec_file": None,
            "primary_metric": "acc",
            "num_fewshot": 0,
            "num_samples": n,
            "source": {
                "origin": "local",
                "format": "jsonl",
                "location": f"data/{task_name}.jsonl",
                "split": "test",
                "num_documents": n,
                "content_sha256": _sha(task_name + "-data"),
            },
        },
        "config": {"limit": n, "seed": 1234, "batch_size": 16, "num_fewshot": 0, "chat_template": False},
        "metrics": {}
        if failed
        else {
            "acc": {
                "value": value,
                "stderr": stderr,
                "ci95": [value - 1.96 * stderr, value + 1.96 * stderr],
                "n": n,
                "higher_is_better": True,
                "bounded": True,
                "chance": 0.25,
            },
        },
        "efficiency": efficiency,
        "long_context": long_context,
        "host": {
            "hostname": "bench",
            "platform": "Linux",
            "cpu": "x86-64",
            "cores": 2,
            "memory_bytes": 24 * 2**30,
            "accelerator": None,
            "python": "3.11",
        },
        "libraries": {"evalkit": "0.1.0"},
        "status": "error" if failed else "ok",
        "error": "RuntimeError: out of memory <fabricated>" if failed else None,
        "samples_file": None if failed else samples_file,
    }


def fabricate(root: Path, models: int, tasks: int, sample_logs: int) -> int:
    """Write the store (one records.jsonl, a few sample logs); returns the number of records."""
    rng = random.Random(0)
    (root / "samples").mkdir(parents=True)
    logged = {(i * 37 % models, i * 11 % tasks) for i in range(sample_logs)}
    with (root / "records.jsonl").open("w", encoding="utf-8") as handle:
        for model in range(models):
            for task in range(tasks):
                samples_file = None
                if (model, task) in logged:
                    samples_file = f"samples/{model:03d}-{task:03d}.jsonl"
                    _write_samples(root / samples_file, rng)
                handle.write(json.dumps(_record(model, task, rng, samples_file)) + "\n")
    return models * tasks


def _write_samples(path: Path, rng: random.Random) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for i in range(1000):
            correct = rng.random() < 0.5
            sample = {
                "sample_id": f"s{i}",
                "prompt": f"Question {i}: " + "lorem ipsum " * 40,
                "target": "A",
                "response": "A" if correct else "B",
                "scores": {"acc": float(correct)},
                "extra": {},
            }
            handle.write(json.dumps(sample) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--sample-logs", type=int, default=5)
    parser.add_argument("--keep", type=Path, default=None, help="write store and site here and keep them")
    parser.add_argument("--no-ranks", action="store_true", help="build as `evalkit site --no-ranks`")
    args = parser.parse_args()

    from evalkit.site import build_site

    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        count = fabricate(root / "results", args.models, args.tasks, args.sample_logs)
        start = time.perf_counter()
        report = build_site(root / "results", root / "site", ranks=not args.no_ranks)
        elapsed = time.perf_counter() - start
        size = sum(p.stat().st_size for p in (root / "site").rglob("*") if p.is_file())
    print(f"records: {count} ({args.models} models x {args.tasks} tasks, {args.sample_logs} sample logs)")
    print(f"pages: {report.pages}, site size: {size / 2**20:.1f} MiB, problems: {len(report.problems)}")
    print(f"build: {elapsed:.2f} s; ratio to the {BUDGET_S:.0f} s budget: {elapsed / BUDGET_S:.2f}")


if __name__ == "__main__":
    main()
