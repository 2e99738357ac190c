"""Shared-prefix state reuse on a real long-context grid: time against the prefills no reuse can avoid.

    .venv/bin/python benchmarks/bench_state_reuse.py [--model smollm2-135m] [--task passkey]
        [--depths 0,0.1,...,1] [--lengths 512,1024,2048] [--skip-scratch]

The grid is the task's own (`evalkit.longcontext.runner.build_grid`: the prompts `evalkit run`
sends, lengths fitted in the model's tokenizer); the depths of one sample share their filler, so
their prompts share a prefix up to the shallower needle. `generate_shared` serves the grid (timed).
The anchor, measured in the same run, is a plain chunked prefill of exactly the trie's distinct
tokens, each once (no decoding, no reads): what any reuse scheme must compute. Printed: grid /
anchor (target <= 1.3), the from-scratch time (`generate`, one prompt at a time) with the
speed-up, and whether every answer is identical to the from-scratch answer.
"""

from __future__ import annotations

import argparse
import time

from evalkit.backends import load_model
from evalkit.backends._hf_prefix import build_trie, distinct_tokens
from evalkit.backends.hf import TransformersBackend
from evalkit.longcontext.check import with_grid
from evalkit.longcontext.runner import build_grid
from evalkit.requests import GenerateRequest
from evalkit.specs import default_catalogue

ELEVEN_DEPTHS = ",".join(f"{i / 10:.1f}" for i in range(11))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--task", default="passkey")
    parser.add_argument("--depths", default=ELEVEN_DEPTHS)
    parser.add_argument("--lengths", default="512,1024,2048")
    parser.add_argument("--prefill-chunk", type=int, default=1024)
    parser.add_argument("--skip-scratch", action="store_true", help="skip the slow from-scratch run")
    args = parser.parse_args()
    backend = load_model(args.model)
    if not isinstance(backend, TransformersBackend):
        raise SystemExit(f"{args.model}: state reuse is implemented for the transformers backend only")
    engine = backend.prefix_engine
    engine.prefill_chunk = args.prefill_chunk
    spec = with_grid(
        default_catalogue().task(args.task),
        [int(n) for n in args.lengths.split(",")],
        [float(d) for d in args.depths.split(",")],
    )
    cells = build_grid(backend, spec).cells
    requests = [r for cell in cells for r in cell.requests if isinstance(r, GenerateRequest)]
    prompts = [backend.prompt_token_ids(r.context) for r in requests]
    root, _ = build_trie(prompts)
    print(
        f"{backend.describe().name} ({backend.family}), {args.task}: {len(requests)} prompts, "
        f"{sum(len(p) for p in prompts)} prompt tokens, {distinct_tokens(root)} distinct"
    )
    engine.prefill_only(prompts[:1])  # warm-up (allocator, threads)

    started = time.perf_counter()
    shared = backend.generate_shared(requests)
    grid_s = time.perf_counter() - started
    stats = dict(engine.stats.extra)
    started = time.perf_counter()
    engine.prefill_only(prompts)
    anchor_s = time.perf_counter() - started
    print(
        f"grid {grid_s:.1f} s: prefilled {stats['prefill_tokens']:.0f} tokens, decoded "
        f"{stats.get('decode_tokens', 0):.0f}, saved {stats['tokens_saved']:.0f}; "
        f"unavoidable prefills {anchor_s:.1f} s"
    )
    summary = (
        f"reuse ratio {grid_s / anchor_s:.2f} (grid {grid_s:.1f} s / unavoidable prefills {anchor_s:.1f} s)"
    )
    if not args.skip_scratch:
        started = time.perf_counter()
        scratch = [backend.generate([r], batch_size=1)[0] for r in requests]
        scratch_s = time.perf_counter() - started
        identical = scratch == shared
        summary += (
            f"; from scratch {scratch_s:.1f} s ({scratch_s / grid_s:.2f}x); answers identical: {identical}"
        )
        for request, a, b in zip(requests, shared, scratch, strict=True):
            if a != b:
                print(f"  differs at {len(backend.prompt_token_ids(request.context))} tokens: {a!r} vs {b!r}")
    print(f"answers: {[r.text for r in shared[:6]]} ...")
    print(summary)


if __name__ == "__main__":
    main()
