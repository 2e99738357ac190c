"""Is a decode figure repeatable? Measure it twice in one process and print the ratio of medians.

    .venv/bin/python benchmarks/bench_repeatability.py [--model smollm2-135m] [--context 128]

Target on a quiet machine: 0.95–1.05. A ratio outside that says the host is busy (another job
on the cores) or the repetition policy is too short for this model.
"""

from __future__ import annotations

import argparse
import time

from evalkit.backends import load_model
from evalkit.efficiency import measure_backend
from evalkit.efficiency._probe import host_peaks
from evalkit.specs.task import EfficiencySpec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--context", type=int, default=128)
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--min-seconds", type=float, default=3.0)
    args = parser.parse_args()
    backend = load_model(args.model)
    facts = backend.describe()
    settings = EfficiencySpec(
        prompt_lengths=[args.context],
        context_lengths=[args.context],
        decode_tokens=args.decode_tokens,
        warmup=1,
        min_repetitions=5,
        min_seconds=args.min_seconds,
    )
    peaks = host_peaks()
    medians = []
    for attempt in (1, 2):
        started = time.perf_counter()
        figures = measure_backend(backend, facts, settings, host_peaks=peaks)
        point = figures["curves"]["decode"][0]
        stats = point["stats"]["time_per_output_token_s"]
        medians.append(point["time_per_output_token_s"])
        median_ms, p95_ms = stats["median"] * 1e3, stats["p95"] * 1e3
        print(
            f"run {attempt}: time/token median {median_ms:.2f} ms  p95 {p95_ms:.2f} ms"
            f"  cv {stats['cv']:.3f}  n {stats['n']}  ({time.perf_counter() - started:.1f} s)"
        )
    print(f"ratio of medians (run 2 / run 1): {medians[1] / medians[0]:.3f}  (target 0.95-1.05)")


if __name__ == "__main__":
    main()
