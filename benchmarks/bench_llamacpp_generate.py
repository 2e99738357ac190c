"""GSM8K generation through llama.cpp (native Q4_1) against evalkit's batched transformers generation.

    .venv/bin/python benchmarks/bench_llamacpp_generate.py [--limit 20] [--batch-size 16] \
        [--max-tokens 256] [--threads N] [--fresh-anchor]

The first `--limit` documents of evalkit's `gsm8k` task (lm-eval 0.4.13's `gsm8k_cot` prompt: eight
fixed worked exemplars, ~750 tokens, then the question; stop at "Q:", "</s>", "<|im_end|>"), built
through the task's own kind, as `evalkit run` sends them. The same GGUF file, SmolLM2-135M-Instruct
Q4_1, runs twice:

* `llamacpp:smollm2-135m`: one prompt at a time, greedy, the exemplar prefix taken from the KV cache
  after the first prompt (prompt tokens evaluated vs in the prompts are printed);
* `smollm2-135m`: dequantized to float32, evalkit's batched KV-cache generation at `--batch-size`.

Prints each side's wall time and generated tokens per second (all generated tokens over the whole
wall time, prefill included), the ratio llama.cpp / transformers, identical texts, and agreement of
the answers extracted by the task's strict and flexible regexes, with each side's exact match.
`--fresh-anchor` also runs llama.cpp with an emptied cache before every prompt (what the prefix reuse
saves, and a check that its texts are the same).
"""

from __future__ import annotations

import argparse
import time
from typing import Any


def gsm8k_requests(limit: int, max_tokens: int) -> tuple[Any, list[Any], list[dict[str, Any]]]:
    """(task, requests, documents) for the first `limit` gsm8k documents, as the executor builds them."""
    from dataclasses import replace

    from evalkit.kinds import get_kind
    from evalkit.kinds.prompt import build_context, choose_fewshot
    from evalkit.sources import load_documents
    from evalkit.specs import Catalogue, builtin_task_dir

    task = Catalogue([builtin_task_dir()]).task("gsm8k")
    kind = get_kind(task.kind)
    documents = load_documents(task).documents[:limit]
    pool = load_documents(task, "fewshot").documents
    requests = []
    for doc in documents:
        shots = choose_fewshot(task, doc, pool, task.num_fewshot, same_split=False)
        (request,) = kind.prepare(task, doc, build_context(task, doc, shots, kind.fewshot_answer)).requests
        requests.append(replace(request, max_tokens=max_tokens))
    return task, requests, documents


def answers(task: Any, text: str) -> tuple[str, str]:
    """The strict and flexible answers the task extracts, normalised as it compares them."""
    from evalkit.kinds._qa_metrics import extract
    from evalkit.kinds.generate import compare_form

    spec = task.answer
    strict = extract(text, spec.regex, spec.group_select, spec.fallback)
    flexible = extract(text, spec.flexible_regex, -1, spec.fallback)
    return compare_form(strict, spec), compare_form(flexible, spec)


def timed(call: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    value = call()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16, help="the transformers side's batch size")
    parser.add_argument("--max-tokens", type=int, default=256, help="lm-eval's default max_gen_toks")
    parser.add_argument("--threads", type=int, help="CPU threads for both sides (default: each one's own)")
    parser.add_argument("--fresh-anchor", action="store_true", help="also run llama.cpp without prefix reuse")
    args = parser.parse_args()

    from evalkit.backends import load_model
    from evalkit.kinds.generate import compare_form

    task, requests, documents = gsm8k_requests(args.limit, args.max_tokens)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    native: Any = load_model("llamacpp:smollm2-135m" + (f",n_threads={args.threads}" if args.threads else ""))
    dequantized: Any = load_model("smollm2-135m")
    prompt_tokens = sum(len(native.prompt_token_ids(r.context)) for r in requests)
    binding = f"{native.binding.distribution} {native.binding.version}"
    print(f"{len(requests)} GSM8K documents (gsm8k_cot prompt), {prompt_tokens} prompt tokens in all, ")
    print(f"max {args.max_tokens} new tokens; llama.cpp via {binding}")

    native.engine.tokens_evaluated = native.engine.tokens_reused = 0
    ours, native_seconds = timed(lambda: native.generate(requests))
    print(f"llama.cpp done in {native_seconds:.1f} s", flush=True)
    evaluated = native.engine.tokens_evaluated
    theirs, hf_seconds = timed(lambda: dequantized.generate(requests, batch_size=args.batch_size))
    native_tokens = sum(r.num_tokens for r in ours)
    hf_tokens = sum(r.num_tokens for r in theirs)
    native_rate, hf_rate = native_tokens / native_seconds, hf_tokens / hf_seconds
    print(
        f"llama.cpp     {native_seconds:7.1f} s  {native_tokens} tokens, {native_rate:.1f} tokens/s; "
        f"prompt tokens evaluated {evaluated} of {prompt_tokens} ({evaluated / prompt_tokens:.1%})"
    )
    print(
        f"transformers  {hf_seconds:7.1f} s  {hf_tokens} tokens, {hf_rate:.1f} tokens/s "
        f"(batch size {args.batch_size})"
    )
    print(
        f"tokens/s ratio llama.cpp / transformers = {native_rate / hf_rate:.2f}; "
        f"wall-time ratio = {native_seconds / hf_seconds:.2f}"
    )

    pairs = list(zip(ours, theirs, strict=True))
    same_text = sum(a.text == b.text for a, b in pairs)
    extracted = [(answers(task, a.text), answers(task, b.text)) for a, b in pairs]
    same_strict = sum(a[0] == b[0] for a, b in extracted)
    same_flexible = sum(a[1] == b[1] for a, b in extracted)
    n = len(pairs)
    print(
        f"identical texts {same_text}/{n}; same strict answer {same_strict}/{n}, flexible {same_flexible}/{n}"
    )
    for name, side in (("llama.cpp", 0), ("transformers", 1)):
        gold = [compare_form(doc["answers"][0], task.answer) for doc in documents]
        strict = sum(pair[side][0] == ref for pair, ref in zip(extracted, gold, strict=True))
        flexible = sum(pair[side][1] == ref for pair, ref in zip(extracted, gold, strict=True))
        print(f"  {name:12s} exact match: strict {strict}/{n}, flexible {flexible}/{n}")
    for index, ((a, b), (x, y)) in enumerate(zip(extracted, pairs, strict=True)):
        if a != b:
            print(f"  answers differ at {index}: llama.cpp {a} {x.text[-60:]!r}")
            print(f"  {' ' * len(f'answers differ at {index}:')} transformers {b} {y.text[-60:]!r}")

    if args.fresh_anchor:
        native.engine.tokens_evaluated = 0
        fresh = []
        start = time.perf_counter()
        for request in requests:
            native.llama.reset()
            fresh.extend(native.generate([request]))
        fresh_seconds = time.perf_counter() - start
        same = sum(a.text == b.text for a, b in zip(ours, fresh, strict=True))
        print(
            f"llama.cpp without reuse {fresh_seconds:7.1f} s, prompt tokens evaluated "
            f"{native.engine.tokens_evaluated}; wall time with / without reuse "
            f"{native_seconds / fresh_seconds:.2f}; "
            f"identical texts {same}/{n}"
        )


if __name__ == "__main__":
    main()
