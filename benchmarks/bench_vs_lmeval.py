"""Wall time of evalkit against lm-eval 0.4.13's HFLM: same model object, same samples, one run.

    .venv/bin/python benchmarks/bench_vs_lmeval.py [--limit 200] [--batch-size 16] \
        [--tasks arc_easy,hellaswag,mmlu_5shot] [--unshared]

Both sides score the same (context, continuation) pairs — evalkit's prompts are lm-eval's
(tests/test_builtin_tasks.py proves it) — on the *same* torch module in float32. lm-eval is timed
on its model call plus the argmax that turns loglikelihoods into accuracy; evalkit is timed on its
whole pipeline (loading documents, building prompts, scoring, statistics), with its response cache
off. The script prints both accuracies (they must be equal) and the ratio evalkit / lm-eval.

`mmlu_5shot`: MMLU with 5 examples, as lm-eval's `mmlu` tasks build it (each subject's first 5 dev
questions, then the test question), on the first `--limit` test documents in evalkit's order
(subjects interleaved round-robin, so 200 documents cover all 57 subjects). Both sides get the
same prebuilt requests (evalkit's `mmlu` task builds these prompts itself with `fewshot_match:
subject`; tests/test_builtin_tasks.py checks them against lm-eval's): lm-eval's
`HFLM.loglikelihood` against evalkit's request executor
(`evalkit.runner.execute.execute`, response cache off: chunking, ordering, the backend's scoring
with each subject's few-shot prefix computed once). `--unshared` also times evalkit with prefix
sharing switched off, to show what sharing alone saves.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from evalkit.backends import load_model
from evalkit.kinds import get_kind
from evalkit.kinds.prompt import build_context
from evalkit.requests import LoglikelihoodResult
from evalkit.runner import EvalConfig, evaluate
from evalkit.sources import load_documents
from evalkit.specs import default_catalogue


def lmeval_accuracy(lm: Any, task_name: str, limit: int) -> tuple[float, float, float]:
    """(acc, acc_norm, seconds) for lm-eval's HFLM on the task's first `limit` documents."""
    from lm_eval.api.instance import Instance

    spec = default_catalogue().task(task_name)
    kind = get_kind(spec.kind)
    documents = load_documents(spec, "eval").documents[:limit]
    samples = [kind.prepare(spec, d, build_context(spec, d, [], kind.fewshot_answer)) for d in documents]
    instances = [
        Instance("loglikelihood", doc={}, arguments=(r.context, r.continuation), idx=i)  # type: ignore[union-attr]
        for sample in samples
        for i, r in enumerate(sample.requests)
    ]
    start = time.perf_counter()
    answers = lm.loglikelihood(instances, disable_tqdm=True)
    correct = correct_norm = 0
    position = 0
    for sample, doc in zip(samples, documents, strict=True):
        lls = [ll for ll, _ in answers[position : position + len(sample.requests)]]
        position += len(sample.requests)
        norm = [ll / len(c) for ll, c in zip(lls, doc["choices"], strict=True)]
        correct += int(max(range(len(lls)), key=lls.__getitem__) == doc["gold"])
        correct_norm += int(max(range(len(norm)), key=norm.__getitem__) == doc["gold"])
    seconds = time.perf_counter() - start
    return correct / len(samples), correct_norm / len(samples), seconds


def mmlu_5shot_requests(limit: int) -> tuple[list[Any], list[int]]:
    """(requests, gold indices) of MMLU 5-shot, lm-eval's prompts, for the first `limit` documents."""
    spec = default_catalogue().task("mmlu")
    kind = get_kind(spec.kind)
    dev = load_documents(spec, "fewshot").documents
    shots_of: dict[str, list[dict[str, Any]]] = {}
    for doc in dev:  # each subject's dev questions in their own order (the interleave keeps it)
        shots_of.setdefault(str(doc["subject"]), []).append(doc)
    requests: list[Any] = []
    gold: list[int] = []
    for doc in load_documents(spec, "eval").documents[:limit]:
        shots = shots_of[str(doc["subject"])][:5]
        sample = kind.prepare(spec, doc, build_context(spec, doc, shots, kind.fewshot_answer))
        requests += sample.requests
        gold.append(int(doc["gold"]))
    return requests, gold


def accuracy(logprobs: list[float], gold: list[int]) -> float:
    """Share of documents whose gold letter has the highest loglikelihood (4 letters each)."""
    correct = 0
    for doc, answer in enumerate(gold):
        lls = logprobs[4 * doc : 4 * doc + 4]
        correct += int(max(range(4), key=lls.__getitem__) == answer)
    return correct / len(gold)


def bench_mmlu_5shot(
    lm: Any, backend: Any, limit: int, batch_size: int, unshared: bool
) -> tuple[float, float]:
    """Print one line for MMLU 5-shot; returns (lm-eval seconds, evalkit seconds)."""
    from lm_eval.api.instance import Instance

    from evalkit.runner.cache import NullCache
    from evalkit.runner.execute import execute

    requests, gold = mmlu_5shot_requests(limit)
    instances = [
        Instance("loglikelihood", doc={}, arguments=(r.context, r.continuation), idx=i % 4)
        for i, r in enumerate(requests)
    ]
    start = time.perf_counter()
    answers = lm.loglikelihood(instances, disable_tqdm=True)
    acc_lm = accuracy([ll for ll, _ in answers], gold)
    seconds_lm = time.perf_counter() - start

    scorer, computed = backend.scorer, [0]
    score = scorer.score

    def counting_score(*args: Any, **kwargs: Any) -> Any:  # stats are per call: add them up
        answers = score(*args, **kwargs)
        computed[0] += scorer.stats.extra.get("shared_prefixes", 0)
        return answers

    scorer.score = counting_score

    def run_evalkit() -> tuple[float, float]:
        begin = time.perf_counter()
        results = execute(backend, requests, cache=NullCache(), batch_size=batch_size, show_progress=False)
        logprobs = [r.logprob for r in results if isinstance(r, LoglikelihoodResult)]
        assert len(logprobs) == len(results)
        acc = accuracy(logprobs, gold)
        return acc, time.perf_counter() - begin

    acc_ek, seconds_ek = run_evalkit()
    same = "equal" if acc_ek == acc_lm else "DIFFERENT"
    subjects = len({r.context.split(".", 1)[0] for r in requests})
    print(
        f"{'mmlu_5shot':<12} lm-eval {seconds_lm:6.1f}s acc {acc_lm:.4f} | evalkit {seconds_ek:6.1f}s "
        f"acc {acc_ek:.4f} | accuracies {same} | ratio {seconds_ek / seconds_lm:.3f} | few-shot prefixes "
        f"computed {computed[0]} for {subjects} subjects"
    )
    if unshared:
        saved, scorer.prefix_sharing = scorer.prefix_sharing, False
        try:
            acc_plain, seconds_plain = run_evalkit()
        finally:
            scorer.prefix_sharing = saved
        print(
            f"{'':<12} evalkit without prefix sharing {seconds_plain:6.1f}s acc {acc_plain:.4f} | "
            f"ratio {seconds_plain / seconds_lm:.3f} | sharing saves {1 - seconds_ek / seconds_plain:.0%}"
        )
    return seconds_lm, seconds_ek


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--tasks", default="arc_easy,hellaswag,mmlu_5shot")
    parser.add_argument("--unshared", action="store_true", help="also time mmlu_5shot without prefix sharing")
    args = parser.parse_args()

    import torch
    from lm_eval.models.huggingface import HFLM

    backend = load_model(args.model)
    model = backend.model  # type: ignore[attr-defined]
    tokenizer = backend.loaded.tokenizer  # type: ignore[attr-defined]
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=args.batch_size, dtype=torch.float32)
    path = getattr(backend, "scoring_path", "?")
    print(f"model {args.model}: {backend.describe().architecture}, scoring path {path}")
    threads = torch.get_num_threads()
    print(f"torch threads {threads}, batch size {args.batch_size}, {args.limit} samples per task")

    total_lm = total_ek = 0.0
    for task in args.tasks.split(","):
        if task == "mmlu_5shot":
            seconds_lm, seconds_ek = bench_mmlu_5shot(lm, backend, args.limit, args.batch_size, args.unshared)
            total_lm += seconds_lm
            total_ek += seconds_ek
            continue
        acc_lm, acc_norm_lm, seconds_lm = lmeval_accuracy(lm, task, args.limit)
        config = EvalConfig(
            limit=args.limit,
            batch_size=args.batch_size,
            use_cache=False,
            show_progress=False,
            results_dir=None,
        )
        start = time.perf_counter()
        record = evaluate([backend], [task], config=config).records[0]
        seconds_ek = time.perf_counter() - start
        if record.status != "ok":
            raise SystemExit(f"evalkit failed on {task}: {record.error}")
        acc_ek, acc_norm_ek = record.metrics["acc"].value, record.metrics["acc_norm"].value
        same = "equal" if (acc_ek, acc_norm_ek) == (acc_lm, acc_norm_lm) else "DIFFERENT"
        print(
            f"{task:<12} lm-eval {seconds_lm:6.1f}s acc {acc_lm:.4f} acc_norm {acc_norm_lm:.4f} | "
            f"evalkit {seconds_ek:6.1f}s acc {acc_ek:.4f} acc_norm {acc_norm_ek:.4f} | accuracies {same} | "
            f"ratio {seconds_ek / seconds_lm:.3f}"
        )
        total_lm += seconds_lm
        total_ek += seconds_ek
    ratio = total_ek / total_lm
    print(f"total: lm-eval {total_lm:.1f}s, evalkit {total_ek:.1f}s, ratio evalkit/lm-eval = {ratio:.3f}")


if __name__ == "__main__":
    main()
