"""Few-shot prefixes computed once in the plain path (`TransformersBackend.loglikelihood`/`generate`).

Requests of one call that share a long prefix (MMLU's per-subject 5-shot examples, gsm8k's fixed
exemplars) have it run once and its cache continued per request. The reference is the same call with
sharing switched off (`scorer.prefix_sharing = False`, today's path) and, for generation, each
request alone at batch size 1: |Δ loglik| <= 1e-4, the same is_greedy, the same texts. The tiny
models' window is 128 tokens, so the tests lower the sharing threshold to 16 tokens (the default
of 128 is checked to leave short prompts alone). Sliding-window models (gemma3) must fall back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from evalkit.backends._hf_prefix import SHARE_MIN_TOKENS, shared_prefix_groups

# --- grouping (no model) -------------------------------------------------------------------------


def test_groups_gather_interleaved_subjects() -> None:
    a, b = list(range(100, 140)), list(range(200, 240))  # two 40-token "few-shot prefixes"
    sequences = [[*a, 1, 2], [*b, 3], [*a, 4], [*b, 5, 6], [7] * 50, [*a, 8, 9, 10]]
    groups, rest = shared_prefix_groups(sequences, [len(s) - 1 for s in sequences], 32, 2)
    assert sorted((g.length, g.members) for g in groups) == [(40, [0, 2, 5]), (40, [1, 3])]
    assert rest == [4]


def test_groups_respect_limits_thresholds_and_sizes() -> None:
    shared = list(range(50))
    sequences = [[*shared, 1], [*shared, 2], shared[:30], [*shared, 3]]
    # The third may share at most 29 tokens (its last token stays out): below 32, so it stays alone.
    groups, rest = shared_prefix_groups(sequences, [len(s) - 1 for s in sequences], 32, 2)
    assert [(g.length, g.members) for g in groups] == [(50, [0, 1, 3])] and rest == [2]
    # A limit inside the run shortens the whole group's prefix.
    groups, rest = shared_prefix_groups(sequences, [50, 40, 29, 35], 32, 2)
    assert [(g.length, g.members) for g in groups] == [(35, [0, 1, 3])] and rest == [2]
    assert shared_prefix_groups(sequences, [50] * 4, 32, 5) == ([], [0, 1, 2, 3])  # too few requests
    assert shared_prefix_groups(sequences, [50] * 4, 64, 2) == ([], [0, 1, 2, 3])  # too short
    assert shared_prefix_groups([[*shared, 1]], [50], 1, 1) == ([], [0])  # one request shares nothing
    assert shared_prefix_groups([], [], 1, 2) == ([], [])


# --- tiny models -------------------------------------------------------------------------------------

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from evalkit.backends import load_model  # noqa: E402
from evalkit.backends.hf import TransformersBackend  # noqa: E402
from evalkit.requests import (  # noqa: E402
    GenerateRequest,
    GenerateResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
)
from tests.conftest_hf import save_tiny_model  # noqa: E402

KINDS = ["llama", "gemma3", "mamba"]
SHARES = {"llama": True, "gemma3": False, "mamba": True}  # gemma3: sliding-window layers
SUBJECTS = {
    "physics": "The quick brown fox jumps over the lazy dog.\nAnswer: B\n\n"
    "Water boils at one hundred degrees at sea level.\nAnswer: A\n\n",
    "biology": "Which gas do plants absorb from the air? carbon dioxide\nAnswer: C\n\n"
    "She sells sea shells by the sea shore.\nAnswer: D\n\n",
}
QUESTIONS = ["A committee met on a cold morning", "Numbers 0 1 2 3", "The shells she sells", "Q"]
TEST_MIN_TOKENS = 16


def mmlu_like() -> list[LoglikelihoodRequest]:
    """Subjects interleaved (as evalkit orders MMLU); each question with four lettered answers."""
    requests = []
    for question in QUESTIONS:
        for subject, shots in SUBJECTS.items():
            context = f"Questions about {subject}.\n\n{shots}{question}?\nAnswer:"
            requests += [LoglikelihoodRequest(context, f" {letter}") for letter in "ABCD"]
            requests.append(LoglikelihoodRequest(context, " carbon dioxide"))  # several tokens
    requests.append(LoglikelihoodRequest("Numbers 0 1", " 2 3"))  # shares nothing
    return requests


def gsm8k_like() -> list[GenerateRequest]:
    shots = SUBJECTS["biology"]  # ~50 tokens: prompts stay inside the tiny models' window
    requests = []
    for position, question in enumerate(QUESTIONS):
        context = f"{shots}Q: {question}\nA:"
        requests.append(GenerateRequest(context, max_tokens=10))
        requests.append(GenerateRequest(context, stop=("e", "o", "0", ":"), max_tokens=8))  # stops early
        requests.append(GenerateRequest(context + " The", max_tokens=1 + position))
    requests.append(GenerateRequest("Numbers 0 1", max_tokens=4))  # shares nothing
    return requests


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TransformersBackend]:
    root = tmp_path_factory.mktemp("tiny-fewshot")
    loaded = {kind: load_model(f"hf:{save_tiny_model(root, kind)}") for kind in KINDS}
    assert all(isinstance(b, TransformersBackend) for b in loaded.values())
    return loaded  # type: ignore[return-value]


@contextmanager
def threshold(backend: TransformersBackend, tokens: int) -> Iterator[None]:
    saved = backend.scorer.share_min_tokens
    backend.scorer.share_min_tokens = tokens
    try:
        yield
    finally:
        backend.scorer.share_min_tokens = saved


@contextmanager
def no_sharing(backend: TransformersBackend) -> Iterator[None]:
    saved = backend.scorer.prefix_sharing
    backend.scorer.prefix_sharing = False
    try:
        yield
    finally:
        backend.scorer.prefix_sharing = saved


def assert_same_loglikelihoods(got: list[LoglikelihoodResult], expected: list[LoglikelihoodResult]) -> None:
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4)
        assert (a.is_greedy, a.num_tokens) == (b.is_greedy, b.num_tokens)


def test_sharing_is_verified_at_load(tiny: dict[str, TransformersBackend]) -> None:
    for kind, backend in tiny.items():
        assert backend.scorer.prefix_sharing is SHARES[kind], backend.scorer.path_notes
    assert any("sliding-window" in note for note in tiny["gemma3"].scorer.path_notes)


@pytest.mark.parametrize("kind", KINDS)
def test_loglikelihood_prefix_once(tiny: dict[str, TransformersBackend], kind: str) -> None:
    backend = tiny[kind]
    requests = mmlu_like()
    with no_sharing(backend):
        expected = backend.loglikelihood(requests, batch_size=4)
        baseline = backend.plain_stats
    assert "shared_prefixes" not in baseline.extra
    with threshold(backend, TEST_MIN_TOKENS):
        for batch_size in (1, 3, 16):
            assert_same_loglikelihoods(backend.loglikelihood(requests, batch_size=batch_size), expected)
            stats = backend.plain_stats
            if not SHARES[kind]:
                assert (
                    "shared_prefixes" not in stats.extra
                    and stats.tokens_processed == baseline.tokens_processed
                )
                continue
            # One prefix per subject, each computed once; every subject's 20 pairs scored on it.
            assert stats.extra["shared_prefixes"] == len(SUBJECTS)
            assert stats.extra["shared_pairs"] == len(requests) - 1
            assert stats.extra["prefix_tokens"] >= len(SUBJECTS) * TEST_MIN_TOKENS
            saved = baseline.tokens_processed - stats.tokens_processed
            assert saved > stats.extra["prefix_tokens"]  # each prefix would have run 4 times at least


@pytest.mark.parametrize("kind", KINDS)
def test_generate_prefix_once(tiny: dict[str, TransformersBackend], kind: str) -> None:
    backend = tiny[kind]
    requests = gsm8k_like()
    with no_sharing(backend):
        alone: list[GenerateResult] = [backend.generate([r], batch_size=1)[0] for r in requests]
        assert backend.generate(requests, batch_size=8) == alone
        baseline = backend.plain_stats.tokens_processed
    assert len({r.text for r in alone}) > 3 and any(r.num_tokens < 8 for r in alone[1::3])
    with threshold(backend, TEST_MIN_TOKENS):
        for batch_size in (1, 4, 8):
            assert backend.generate(requests, batch_size=batch_size) == alone, f"batch size {batch_size}"
            stats = backend.plain_stats
            if SHARES[kind]:
                assert stats.extra["shared_prefixes"] == 1
                assert stats.extra["shared_requests"] == len(requests) - 1
                assert baseline - stats.tokens_processed >= (len(requests) - 2) * stats.extra["prefix_tokens"]
            else:
                assert "shared_prefixes" not in stats.extra


def test_the_prefix_forward_runs_once(tiny: dict[str, TransformersBackend]) -> None:
    """Counted at the model: one forward holds the prefix, every other forward only what follows it."""
    backend = tiny["llama"]
    requests = gsm8k_like()[:-1]
    prompts = [backend.prompt_token_ids(r.context) for r in requests]
    shapes: list[tuple[int, int]] = []
    handle = backend.model.register_forward_pre_hook(
        lambda _module, _args, kwargs: shapes.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True
    )
    try:
        with threshold(backend, TEST_MIN_TOKENS):
            backend.generate(requests, batch_size=16)
    finally:
        handle.remove()
    prefix = int(backend.plain_stats.extra["prefix_tokens"])
    assert shapes[0] == (1, prefix)
    longest_rest = max(len(p) - prefix for p in prompts)
    assert shapes[1] == (len(requests), longest_rest)  # the suffixes, left-padded after the prefix
    assert all(width == 1 for _, width in shapes[2:])  # then decoding, one token per forward


def test_truncated_requests_keep_todays_path(tiny: dict[str, TransformersBackend]) -> None:
    """A request that HFLM would left-truncate is never shared; the others still are."""
    backend = tiny["llama"]
    shots = SUBJECTS["physics"] * 2  # ~115 tokens: the window is 128
    requests = [LoglikelihoodRequest(f"{shots}{q}?\nAnswer:", " B") for q in QUESTIONS]
    lengths = [sum(len(p) for p in backend.encoder.encode_pair(r.context, r.continuation)) for r in requests]
    assert max(lengths) - 1 > backend.max_length, "the longest request must need truncation"
    fitting = sum(n - 1 <= backend.max_length for n in lengths)
    assert fitting >= 2
    with no_sharing(backend):
        expected = backend.loglikelihood(requests, batch_size=4)
    with threshold(backend, TEST_MIN_TOKENS):
        assert_same_loglikelihoods(backend.loglikelihood(requests, batch_size=4), expected)
        assert backend.plain_stats.extra["shared_pairs"] == fitting
        generate = [GenerateRequest(r.context, max_tokens=4) for r in requests]  # room: 124 tokens
        with no_sharing(backend):
            expected_texts = backend.generate(generate, batch_size=4)
        assert backend.generate(generate, batch_size=4) == expected_texts
        room = backend.max_length - 4
        untruncated = sum(len(backend.prompt_token_ids(r.context)) <= room for r in generate)
        assert 2 <= untruncated < len(generate)
        assert backend.plain_stats.extra["shared_requests"] == untruncated


def test_default_threshold_leaves_short_prefixes_alone(tiny: dict[str, TransformersBackend]) -> None:
    backend = tiny["llama"]
    assert backend.scorer.share_min_tokens == SHARE_MIN_TOKENS == 128
    backend.loglikelihood(mmlu_like(), batch_size=8)
    assert "shared_prefixes" not in backend.plain_stats.extra
    backend.generate(gsm8k_like(), batch_size=8)
    assert "shared_prefixes" not in backend.plain_stats.extra


# --- SmolLM2-135M on MMLU 5-shot and gsm8k ----------------------------------------------------------


def mmlu_5shot_requests(documents: int, subjects: int) -> tuple[list[LoglikelihoodRequest], list[int]]:
    """MMLU 5-shot as lm-eval asks it: each subject's first 5 dev questions, then the test question.

    The first `documents` test questions of the first `subjects` subjects, interleaved.
    Returns the requests (4 per question) and the gold indices.
    """
    from evalkit.kinds import get_kind
    from evalkit.kinds.prompt import build_context
    from evalkit.sources import load_documents
    from evalkit.specs import default_catalogue

    spec = default_catalogue().task("mmlu")
    kind = get_kind(spec.kind)
    dev = load_documents(spec, "fewshot").documents
    picked: list[dict[str, object]] = []
    names: list[str] = []
    for doc in load_documents(spec, "eval").documents:
        if doc["subject"] not in names and len(names) < subjects:
            names.append(str(doc["subject"]))
        if doc["subject"] in names:
            picked.append(doc)
        if len(picked) == documents:
            break
    requests: list[LoglikelihoodRequest] = []
    gold = []
    for doc in picked:
        shots = [d for d in dev if d["subject"] == doc["subject"]][:5]
        sample = kind.prepare(spec, doc, build_context(spec, doc, shots, kind.fewshot_answer))
        requests += sample.requests  # type: ignore[arg-type]
        gold.append(int(doc["gold"]))  # type: ignore[call-overload]
    return requests, gold


def gsm8k_requests(documents: int) -> list[GenerateRequest]:
    from evalkit.kinds import get_kind
    from evalkit.kinds.prompt import build_context, choose_fewshot
    from evalkit.sources import load_documents
    from evalkit.specs import default_catalogue

    spec = default_catalogue().task("gsm8k")
    kind = get_kind(spec.kind)
    pool = load_documents(spec, "fewshot").documents
    requests: list[GenerateRequest] = []
    for doc in load_documents(spec, "eval").documents[:documents]:
        shots = choose_fewshot(spec, doc, pool, spec.num_fewshot, same_split=False)
        sample = kind.prepare(spec, doc, build_context(spec, doc, shots, kind.fewshot_answer))
        requests += sample.requests  # type: ignore[arg-type]
    return requests


@pytest.mark.real
def test_smollm2_mmlu_5shot_and_gsm8k_prefix_once() -> None:
    backend = load_model("smollm2-135m")
    assert isinstance(backend, TransformersBackend) and backend.scorer.prefix_sharing
    requests, _ = mmlu_5shot_requests(8, 2)
    assert len(requests) == 32
    with no_sharing(backend):
        expected = backend.loglikelihood(requests, batch_size=16)
    got = backend.loglikelihood(requests, batch_size=16)
    assert_same_loglikelihoods(got, expected)
    assert backend.plain_stats.extra["shared_prefixes"] == 2  # one per subject
    assert backend.plain_stats.extra["shared_pairs"] == 32

    generate = [
        GenerateRequest(r.context, stop=r.stop, max_tokens=64) for r in gsm8k_requests(4)
    ]  # 64 tokens: enough to differ, short enough for CI
    with no_sharing(backend):
        alone = [backend.generate([r], batch_size=1)[0] for r in generate]
    assert backend.generate(generate, batch_size=4) == alone
    stats = backend.plain_stats
    assert stats.extra["shared_prefixes"] == 1 and stats.extra["prefix_tokens"] > 600
