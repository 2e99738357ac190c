"""CPU against GPU on the same model and documents: per-sample |Δ loglikelihood| and accuracy.

    .venv/bin/python benchmarks/bench_device_parity.py [--model smollm2-135m] [--task arc_easy] \
        [--limit 100] [--dtype float32] [--device cuda]

The model is loaded twice, `device=cpu` (float32, the reference) and `device=cuda` (float32 by
default, or `--dtype bfloat16`), and both score the task's first `--limit` documents through the
ordinary runner with the response cache off. Printed: max and mean |Δ| over every choice's
log-likelihood, how many documents change their argmax, the accuracy on both devices and the wall
time of each evaluation. Needs a CUDA device (exit 2 without one); `--device cpu` compares the CPU
with itself (a smoke test of the script where no GPU is present).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from evalkit.backends import load_model
from evalkit.results import ResultsStore, RunRecord, SampleLog
from evalkit.runner import EvalConfig, evaluate


def scored(spec: str, task: str, limit: int, folder: Path) -> tuple[RunRecord, list[SampleLog], float]:
    backend = load_model(spec)
    started = time.perf_counter()
    config = EvalConfig(limit=limit, use_cache=False, show_progress=False, results_dir=folder)
    record = evaluate([backend], [task], config=config).records[0]
    seconds = time.perf_counter() - started
    if record.status != "ok":
        raise SystemExit(f"{spec} on {task} failed: {record.error}")
    return record, ResultsStore(folder).read_samples(record), seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--task", default="arc_easy")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--device", default="cuda", help="compared with the CPU: cuda, cuda:N, mps")
    args = parser.parse_args()

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: no CUDA device (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="evalkit-parity-") as scratch:
        cpu_spec = f"{args.model},device=cpu"
        cpu_record, cpu_samples, cpu_s = scored(cpu_spec, args.task, args.limit, Path(scratch, "cpu"))
        other_spec = f"{args.model},device={args.device},dtype={args.dtype}"
        other_record, other_samples, other_s = scored(other_spec, args.task, args.limit, Path(scratch, "x"))

    deltas: list[float] = []
    flips = 0
    for cpu, other in zip(cpu_samples, other_samples, strict=True):
        same = cpu.sample_id == other.sample_id
        if not same or not isinstance(cpu.response, list) or not isinstance(other.response, list):
            raise SystemExit(f"sample {cpu.sample_id}: the two runs did not score the same choices")
        deltas.extend(abs(a - b) for a, b in zip(cpu.response, other.response, strict=True))
        flips += int(cpu.response.index(max(cpu.response)) != other.response.index(max(other.response)))
    metric = cpu_record.task.primary_metric
    print(f"{args.model} on {args.task}: {len(cpu_samples)} documents, {len(deltas)} log-likelihoods")
    print(f"cpu float32      : {metric} {cpu_record.metrics[metric].value:.4f}  ({cpu_s:.1f} s)")
    shown = f"{args.device} {args.dtype}"
    print(f"{shown:<17}: {metric} {other_record.metrics[metric].value:.4f}  ({other_s:.1f} s)")
    mean = statistics.fmean(deltas)
    print(f"|Δ loglik| max {max(deltas):.3e}, mean {mean:.3e}; argmax changed on {flips} documents")
    print(f"device: {other_record.model.device}; host accelerator: {other_record.host.accelerator}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
