"""Shared-prefix serving (`generate_shared`, `loglikelihood_shared`) on tiny random models.

The reference is the backend's own `generate` (from scratch, batch size 1) and `loglikelihood`:
state reuse, chunked prefill, crops, sliding-window restores and recurrent snapshots must not
change a single greedy token, nor a log-probability by more than 1e-4.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.backends._hf_prefix import build_trie, distinct_tokens

KINDS = ["llama", "gemma3", "mamba", "mamba2", "falcon_mamba", "jamba", "zamba"]
FILLER = "Water boils at one hundred degrees at sea level, and freezes at zero. "
NEEDLE = "The quick brown fox jumps over the lazy dog. "
QUESTION = "Question: Which gas do plants absorb from the air? Answer:"


def _haystack(depth: int) -> str:
    """Two filler sentences with the needle after `depth` of them (prompts share a prefix)."""
    parts = [FILLER] * 2
    parts.insert(depth, NEEDLE)
    return "".join(parts)


def _generate_requests() -> list[object]:
    from evalkit.requests import GenerateRequest

    contexts = [_haystack(d) + QUESTION for d in (2, 1, 0)]
    contexts.append(_haystack(2))  # a strict prefix of the first
    contexts.append(contexts[0])  # a duplicate
    requests = [GenerateRequest(c, max_tokens=6) for c in contexts]
    requests.append(GenerateRequest(contexts[0], stop=("e", "a"), max_tokens=10))  # same node, other limits
    requests.append(GenerateRequest("Numbers 0 1 2", max_tokens=5))  # shares only BOS
    return requests


def _loglikelihood_requests() -> list[object]:
    from evalkit.requests import LoglikelihoodRequest

    contexts = [_haystack(2) + QUESTION, _haystack(1) + QUESTION, _haystack(2), "Water boils at "]
    continuations = [" carbon dioxide", " carbon monoxide", " oxygen", ""]
    requests = [LoglikelihoodRequest(c, k) for c in contexts for k in continuations]
    return [*requests, LoglikelihoodRequest("", "Hello world"), requests[0]]


# --- the trie (no model) -------------------------------------------------------------------------


def test_trie_shares_prefixes_and_ends_every_sequence() -> None:
    sequences = [[1, 2, 3, 4], [1, 2, 3], [1, 2, 5], [1, 2, 3, 4], [7], [1, 2, 3, 6, 6]]
    root, ending = build_trie(sequences)
    for seq in sequences:
        node = ending[tuple(seq)]
        assert node.depth == len(seq) and node.tokens[: node.depth] == tuple(seq)
    # 1 2 | 3 | 4, 6 6 ; 5 ; 7  ->  2 + 1 + 1 + 2 + 1 + 1 distinct tokens
    assert distinct_tokens(root) == 8
    assert sorted(root.children) == [1, 7]
    shared = root.children[1]
    assert (shared.start, shared.depth) == (0, 2) and sorted(shared.children) == [3, 5]


def test_trie_of_one_sequence_is_one_edge() -> None:
    root, ending = build_trie([[4, 5, 6]])
    assert list(root.children.values()) == [ending[(4, 5, 6)]]
    assert distinct_tokens(root) == 3


# --- the backends ----------------------------------------------------------------------------------

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from evalkit.backends import load_model  # noqa: E402
from evalkit.backends.capabilities import PrefixReuse, PromptTokens  # noqa: E402
from evalkit.backends.hf import TransformersBackend  # noqa: E402
from tests.conftest_hf import save_tiny_model  # noqa: E402


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TransformersBackend]:
    root = tmp_path_factory.mktemp("tiny-prefix-models")
    loaded = {kind: load_model(f"hf:{save_tiny_model(root, kind)}") for kind in KINDS}
    assert all(isinstance(b, TransformersBackend) for b in loaded.values())
    return loaded  # type: ignore[return-value]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "evalkit-cache"))


@pytest.mark.parametrize("kind", KINDS)
def test_generate_shared_equals_generate(backends: dict[str, TransformersBackend], kind: str) -> None:
    backend = backends[kind]
    requests = _generate_requests()
    for request in requests:  # the comparison is only meaningful within the window
        assert len(backend.prompt_token_ids(request.context)) + request.max_tokens <= backend.max_length  # type: ignore[attr-defined]
    expected = [backend.generate([r], batch_size=1)[0] for r in requests]  # type: ignore[list-item]
    assert any(r.num_tokens > 1 for r in expected)  # the models do decode
    for chunk in (1024, 7):
        backend.prefix_engine.prefill_chunk = chunk
        assert backend.generate_shared(requests) == expected  # type: ignore[arg-type]
        stats = backend.prefix_stats
        assert stats.extra["prefill_tokens"] < stats.extra["from_scratch_tokens"] / 2
        assert stats.extra["tokens_saved"] > 0
    backend.prefix_engine.prefill_chunk = 1024
    single = requests[:1]
    assert backend.generate_shared(single) == expected[:1]  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", KINDS)
def test_loglikelihood_shared_equals_loglikelihood(
    backends: dict[str, TransformersBackend], kind: str
) -> None:
    backend = backends[kind]
    requests = _loglikelihood_requests()
    expected = backend.loglikelihood(requests, batch_size=1)  # type: ignore[arg-type]
    for chunk in (1024, 7):
        backend.prefix_engine.prefill_chunk = chunk
        got = backend.loglikelihood_shared(requests)  # type: ignore[arg-type]
        for a, b in zip(got, expected, strict=True):
            assert a.logprob == pytest.approx(b.logprob, abs=1e-4)
            assert (a.is_greedy, a.num_tokens) == (b.is_greedy, b.num_tokens)
        assert (
            backend.prefix_stats.extra["prefill_tokens"] < backend.prefix_stats.extra["from_scratch_tokens"]
        )
    backend.prefix_engine.prefill_chunk = 1024


def test_recurrent_families_snapshot_attention_families_do_not(
    backends: dict[str, TransformersBackend],
) -> None:
    requests = _generate_requests()
    for kind, backend in backends.items():
        backend.generate_shared(requests)  # type: ignore[arg-type]
        snapshots = backend.prefix_stats.extra.get("snapshots", 0)
        assert (snapshots > 0) == (backend.family != "transformer"), kind
        assert backend.prefix_stats.extra["restores"] > 0


def test_capabilities_and_prompt_tokens(backends: dict[str, TransformersBackend]) -> None:
    backend = backends["llama"]
    assert isinstance(backend, PrefixReuse) and isinstance(backend, PromptTokens)
    ids = backend.prompt_token_ids("The quick brown fox")
    assert ids[0] == backend.hf_tokenizer.bos_token_id
    assert ids == backend.encoder.encode_for_generation("The quick brown fox")
    long_text = FILLER * 40  # far beyond the 128-token window: counted, never truncated
    assert len(backend.prompt_token_ids(long_text)) > backend.max_length
    identity = backend.tokenizer_identity()
    name, digest = identity.split(":")
    assert name == type(backend.hf_tokenizer).__name__ and len(digest) == 16
    assert identity == backends["mamba"].tokenizer_identity()  # same tokenizer files


def test_prompts_beyond_the_window_run_untruncated(backends: dict[str, TransformersBackend]) -> None:
    from evalkit.requests import GenerateRequest

    backend = backends["mamba"]  # no positional limit, so the untruncated answer is well defined
    context = FILLER * 12 + QUESTION
    shared = backend.generate_shared([GenerateRequest(context, max_tokens=4)])
    assert backend.prefix_stats.extra["prefill_tokens"] == len(backend.prompt_token_ids(context))
    assert shared == backend.generate([GenerateRequest(context, max_tokens=4)], batch_size=1)
