"""The `quick` suite through the local executor and through Ray, in one run: time and identical records.

    .venv/bin/python benchmarks/bench_ray.py [--model smollm2-135m] [--limit 20] [--workers 2]
        [--cpus-per-worker 1] [--shards N]

Both runs start from an empty response cache of their own (converted models are shared, so a
model loads in seconds either way) and write their own results folder. Ray runs on a local
instance started first and timed apart: the ratio compares `evaluate` with `evaluate`, model loads
on the workers included, `ray.init` excluded. On 2 cores no speed-up is possible (the local run
already uses both through torch's threads); the goal there is ray/local <= 1.2.

Records are compared per task: the model and task fingerprints, every sample's scores and its
response — texts equal, log-likelihoods within 1e-4 (the workers compute with one thread each,
the local run with all, so the last bits of a sum may differ) — and the metrics within 1e-4
(relative, for the unbounded ones: a perplexity is an exponential of those sums).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from evalkit.paths import cache_dir
from evalkit.results import RunRecord
from evalkit.results.store import ResultsStore
from evalkit.runner import EvalConfig, evaluate
from evalkit.runner.cluster import ClusterOptions, ray_runtime

TOLERANCE = 1e-4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--suite", default="quick")
    parser.add_argument("--limit", type=int, default=20, help="documents per task (default 20)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cpus-per-worker", type=float, default=1.0)
    parser.add_argument("--shards", type=int, default=None, help="units per task (default: --workers)")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    shared = cache_dir()
    try:
        local, local_s = timed_run(args, scratch / "local", shared, cluster=None)
        per_worker = args.cpus_per_worker
        options = ClusterOptions(workers=args.workers, cpus_per_worker=per_worker, shards=args.shards)
        _fresh_cache(scratch / "ray", shared)  # before Ray starts: its processes inherit the variable
        started = time.perf_counter()
        with ray_runtime(None):
            init_s = time.perf_counter() - started
            spread, ray_s = timed_run(args, scratch / "ray", shared, cluster=options)
        report(args, local, spread, scratch, local_s, ray_s, init_s)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def timed_run(
    args: argparse.Namespace, folder: Path, shared: Path, *, cluster: ClusterOptions | None
) -> tuple[list[RunRecord], float]:
    _fresh_cache(folder, shared)
    results = folder / "results"
    config = EvalConfig(limit=args.limit, results_dir=results, show_progress=False, cluster=cluster)
    started = time.perf_counter()
    summary = evaluate([args.model], suite=args.suite, config=config)
    return summary.records, time.perf_counter() - started


def _fresh_cache(folder: Path, shared: Path) -> None:
    """An empty response cache in `folder`, sharing the converted models (and file hashes) of `shared`."""
    cache = folder / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    for name in ("converted", "gguf"):
        if (shared / name).is_dir() and not (cache / name).exists():
            (cache / name).symlink_to(shared / name)
    for name in ("file-hashes.json", "host_peaks.json"):
        if (shared / name).is_file():
            shutil.copy(shared / name, cache / name)
    os.environ["EVALKIT_CACHE_DIR"] = str(cache)


def report(
    args: argparse.Namespace,
    local: list[RunRecord],
    spread: list[RunRecord],
    scratch: Path,
    local_s: float,
    ray_s: float,
    init_s: float,
) -> None:
    print(
        f"{args.model}, suite {args.suite}, --limit {args.limit}; Ray: {args.workers} workers x "
        f"{args.cpus_per_worker:g} CPU, shards {args.shards or args.workers}; {os.cpu_count()} cores here"
    )
    print(f"{'task':<16} {'n':>4} {'local s':>8} {'ray s':>8} {'max |dLL|':>10}  identical")
    all_same = True
    for here, there in zip(local, spread, strict=True):
        differences, largest = compare(here, there, scratch)
        all_same = all_same and not differences
        shown = "yes" if not differences else "NO: " + "; ".join(differences[:3])
        times = f"{here.duration_s:>8.1f} {there.duration_s:>8.1f}"
        print(f"{here.task.name:<16} {here.task.num_samples:>4} {times} {largest:>10.2e}  {shown}")
    print(f"local: {local_s:.1f} s; ray: {ray_s:.1f} s (+ ray.init {init_s:.1f} s, not counted)")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average at the end (1, 5, 15 min): {load} (other work on this machine skews the ratio)")
    print(f"wall-time ratio ray/local: {ray_s / local_s:.2f} (goal <= 1.2)")
    print(f"records identical (responses within {TOLERANCE:g}): {'yes' if all_same else 'NO'}")


def compare(here: RunRecord, there: RunRecord, scratch: Path) -> tuple[list[str], float]:
    """What differs between two records of one task, and the largest log-likelihood difference."""
    differences: list[str] = []
    if (here.status, there.status) != ("ok", "ok"):
        return [f"status {here.status}/{there.status}: {here.error or there.error}"], 0.0
    if here.model.fingerprint != there.model.fingerprint:
        differences.append("model fingerprint")
    if here.task.fingerprint != there.task.fingerprint:
        differences.append("task fingerprint")
    for name, metric in here.metrics.items():
        other = there.metrics.get(name)
        if other is None or abs(metric.value - other.value) > TOLERANCE * max(1.0, abs(metric.value)):
            differences.append(f"metric {name}")
    mine = ResultsStore(scratch / "local" / "results").read_samples(here)
    theirs = ResultsStore(scratch / "ray" / "results").read_samples(there)
    largest = 0.0
    for a, b in zip(mine, theirs, strict=True):
        gap = _gap(a.response, b.response)
        largest = max(largest, gap if gap is not None else 0.0)
        if gap is None or gap > TOLERANCE or a.scores != b.scores:
            differences.append(f"sample {a.sample_id}")
    return differences, largest


def _gap(a: Any, b: Any) -> float | None:
    """The largest |a - b| over numbers; None when the responses differ otherwise (text, shape)."""
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return None
        gaps = [_gap(x, y) for x, y in zip(a, b, strict=True)]
        return None if any(g is None for g in gaps) else max([g for g in gaps if g is not None], default=0.0)
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return abs(float(a) - float(b))
    return 0.0 if a == b else None


if __name__ == "__main__":
    main()
