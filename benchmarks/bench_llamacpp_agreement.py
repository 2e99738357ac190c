"""Native llama.cpp against the dequantized transformers run of the same GGUF: agreement and wall time.

    .venv/bin/python benchmarks/bench_llamacpp_agreement.py [--limit 60] [--model smollm2-135m]
        [--binding auto|python|sync]

Both backends score the same ARC-Easy requests (evalkit's prompts, zero-shot). llama.cpp computes
with the file's quantized blocks, transformers with float32 weights dequantized from them, so the
loglikelihoods differ by arithmetic alone; the script prints max and mean |Δ| per request (nats),
the fraction of questions whose argmax choice agrees, both accuracies, and each backend's wall time
on the requests (model loading excluded), and which Python binding of llama.cpp ran (`--binding`
sets EVALKIT_LLAMACPP_BINDING: the compiled llama-cpp-python or the prebuilt llama-cpp-py-sync).
The figures in `evalkit/backends/llamacpp.py` and benchmarks/README.md come from this script;
`tests/test_backend_llamacpp.py` asserts them with margin.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from evalkit.backends import load_model
from evalkit.kinds import get_kind
from evalkit.kinds.prompt import build_context
from evalkit.requests import LoglikelihoodRequest
from evalkit.sources import load_documents
from evalkit.specs import default_catalogue

Question = tuple[list[LoglikelihoodRequest], int]


def arc_easy_requests(limit: int) -> list[Question]:
    """(one request per choice, index of the gold choice) for the first `limit` ARC-Easy questions."""
    spec = default_catalogue().task("arc_easy")
    kind = get_kind(spec.kind)
    documents = load_documents(spec, "eval").documents[:limit]
    questions: list[Question] = []
    for doc in documents:
        sample = kind.prepare(spec, doc, build_context(spec, doc, [], kind.fewshot_answer))
        requests = [r for r in sample.requests if isinstance(r, LoglikelihoodRequest)]
        questions.append((requests, int(doc["gold"])))
    return questions


def _timed_scores(backend: Any, requests: list[LoglikelihoodRequest]) -> tuple[list[float], float, int]:
    start = time.perf_counter()
    results = backend.loglikelihood(requests, batch_size=16)
    seconds = time.perf_counter() - start
    return [r.logprob for r in results], seconds, sum(r.num_tokens for r in results)


def compare(native: Any, reference: Any, questions: list[Question]) -> dict[str, float]:
    """Agreement figures and wall times of `native` against `reference` on the same requests."""
    requests = [r for q, _ in questions for r in q]
    native_scores, native_seconds, tokens = _timed_scores(native, requests)
    reference_scores, reference_seconds, _ = _timed_scores(reference, requests)
    deltas = [abs(a - b) for a, b in zip(native_scores, reference_scores, strict=True)]
    agree = correct_native = correct_reference = 0
    position = 0
    for choices, gold in questions:
        n = len(choices)
        a = native_scores[position : position + n]
        b = reference_scores[position : position + n]
        position += n
        pick_a, pick_b = a.index(max(a)), b.index(max(b))
        agree += int(pick_a == pick_b)
        correct_native += int(pick_a == gold)
        correct_reference += int(pick_b == gold)
    return {
        "questions": float(len(questions)),
        "requests": float(len(requests)),
        "max_abs_delta": max(deltas),
        "mean_abs_delta": sum(deltas) / len(deltas),
        "mean_abs_delta_per_token": sum(deltas) / tokens,
        "choice_agreement": agree / len(questions),
        "acc_native": correct_native / len(questions),
        "acc_reference": correct_reference / len(questions),
        "seconds_native": native_seconds,
        "seconds_reference": reference_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m", help="an alias or GGUF file")
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("--binding", choices=["auto", "python", "sync"], help="default: the environment's")
    args = parser.parse_args()
    if args.binding:
        os.environ["EVALKIT_LLAMACPP_BINDING"] = args.binding

    native = load_model(f"llamacpp:{args.model}")
    reference = load_model(args.model if "/" not in args.model else f"gguf:{args.model}")
    questions = arc_easy_requests(args.limit)
    figures = compare(native, reference, questions)
    facts = native.describe()
    print(f"{facts.name}: {facts.quantization}, {facts.parameters:,} parameters")
    print(f"binding: {native.binding.distribution} {native.binding.version}")
    print(f"ARC-Easy: {figures['questions']:.0f} questions, {figures['requests']:.0f} requests")
    print(
        f"|Δ loglikelihood| per request: max {figures['max_abs_delta']:.4f} nats, "
        f"mean {figures['mean_abs_delta']:.4f} nats ({figures['mean_abs_delta_per_token']:.4f} per token)"
    )
    print(f"argmax choice agreement: {figures['choice_agreement']:.3f}")
    print(f"accuracy: llama.cpp {figures['acc_native']:.4f}, transformers {figures['acc_reference']:.4f}")
    ratio = figures["seconds_reference"] / figures["seconds_native"]
    print(
        f"wall time: llama.cpp {figures['seconds_native']:.2f}s, "
        f"transformers {figures['seconds_reference']:.2f}s (llama.cpp {ratio:.2f}× faster)"
    )


if __name__ == "__main__":
    main()
