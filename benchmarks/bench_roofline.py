"""Does the host probe measure the real matmul peak? Compare it with a plain torch loop.

    .venv/bin/python benchmarks/bench_roofline.py [--seconds 2]

Prints the probe's fp32 and bf16 GFLOP/s (best of a timed loop, as cached in host_peaks.json)
next to a plain `a @ b` loop timed as a whole in the same run, and their ratio (target: within
15%). Also prints the probe's copy bandwidth. On the reference 2-core AVX-512 host about 180
(fp32) and 415 (bf16) GFLOP/s were seen when the machine was quiet.
"""

from __future__ import annotations

import argparse
import time

import torch

from evalkit.efficiency._probe import MATMUL_SIZE, copy_bytes_per_s, matmul_flops_per_s


def plain_loop(dtype: torch.dtype, seconds: float, size: int = MATMUL_SIZE) -> float:
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    a @ b
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        count += 1
    return 2.0 * size**3 * count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {MATMUL_SIZE}² matmul")
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        probe = matmul_flops_per_s(name, args.seconds)
        plain = plain_loop(dtype, args.seconds)
        print(
            f"{name:9s} probe {probe / 1e9:7.1f} GFLOP/s   plain loop {plain / 1e9:7.1f} GFLOP/s"
            f"   ratio {probe / plain:.3f}"
        )
    print(f"copy bandwidth (read + write): {copy_bytes_per_s(args.seconds) / 1e9:.1f} GB/s")


if __name__ == "__main__":
    main()
