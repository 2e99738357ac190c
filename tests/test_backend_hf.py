"""The transformers backend on tiny random models (llama, gemma3 with sliding windows, mamba).

The reference for every number is a plain, unbatched full forward computed in the test
itself; the backend's packing, gathering and batching must reproduce it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from evalkit.backends import load_model  # noqa: E402
from evalkit.backends._hf_tokens import model_family, rolling_windows  # noqa: E402
from evalkit.backends.hf import TransformersBackend  # noqa: E402
from evalkit.errors import BackendUnavailableError, SpecError  # noqa: E402
from evalkit.requests import GenerateRequest, LoglikelihoodRequest, RollingRequest  # noqa: E402
from tests.conftest_hf import save_tiny_model, write_tiny_llama_gguf  # noqa: E402

KINDS = ["llama", "gemma3", "mamba"]
CONTEXTS = [
    "The quick brown fox jumps over",
    "Question: Which gas do plants absorb from the air?\nAnswer:",
    # Longer than gemma3's sliding window of 6 tokens, so the packed mask must apply it.
    "A committee met on a cold morning to decide which bridge to repair first, and after a long debate",
    "Water boils at ",  # trailing space moves onto the continuation
]
CONTINUATIONS = [" the lazy dog", " carbon dioxide", "one hundred degrees", " it", " sea shells by the shore"]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-models")
    return {kind: save_tiny_model(root, kind) for kind in KINDS}


@pytest.fixture(scope="module")
def backends(model_dirs: dict[str, Path]) -> dict[str, TransformersBackend]:
    loaded = {kind: load_model(f"hf:{folder}") for kind, folder in model_dirs.items()}
    assert all(isinstance(b, TransformersBackend) for b in loaded.values())
    return loaded  # type: ignore[return-value]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "evalkit-cache"))


def _requests() -> list[LoglikelihoodRequest]:
    reqs = [LoglikelihoodRequest(c, k) for c in CONTEXTS for k in CONTINUATIONS]
    return reqs + [LoglikelihoodRequest("", "Hello world"), LoglikelihoodRequest("Same", " twice")] * 2


def _hand_loglikelihood(backend: TransformersBackend, context: str, continuation: str) -> tuple[float, int]:
    """HFLM's recipe written out longhand: move trailing spaces, split encode(whole), full forward."""
    tok = backend.loaded.tokenizer
    if context:
        stripped = context.rstrip()
        continuation = context[len(stripped) :] + continuation
        context_ids = tok.encode(stripped)
        continuation_ids = tok.encode(stripped + continuation)[len(context_ids) :]
    else:
        context_ids, continuation_ids = [tok.bos_token_id], tok.encode(continuation, add_special_tokens=False)
    ids = torch.tensor([context_ids + continuation_ids[:-1]])
    with torch.inference_mode():
        logprobs = torch.log_softmax(backend.model(input_ids=ids).logits[0].float(), dim=-1)
    rows = logprobs[-len(continuation_ids) :]
    return float(rows.gather(1, torch.tensor(continuation_ids)[:, None]).sum()), len(continuation_ids)


def test_scoring_path_chosen_per_architecture(backends: dict[str, TransformersBackend]) -> None:
    assert backends["llama"].scoring_path == "packed+gathered-logits"
    assert backends["gemma3"].scoring_path == "packed+gathered-logits"  # dict mask, softcapped logits
    assert backends["mamba"].scoring_path == "plain+gathered-logits"
    assert any("recurrent" in note for note in backends["mamba"].scorer.path_notes)


@pytest.mark.parametrize("kind", KINDS)
def test_loglikelihood_equals_hand_computed_full_forward(
    backends: dict[str, TransformersBackend], kind: str
) -> None:
    backend = backends[kind]
    requests = _requests()
    results = backend.loglikelihood(requests, batch_size=8)
    for request, result in zip(requests, results, strict=True):
        expected, n_tokens = _hand_loglikelihood(backend, request.context, request.continuation)
        assert result.num_tokens == n_tokens
        assert result.logprob == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("kind", ["llama", "gemma3"])
@pytest.mark.parametrize("split_rows", [False, True])
def test_packed_rows_match_plain_rows(
    backends: dict[str, TransformersBackend], kind: str, split_rows: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evalkit.backends import _hf_score

    if split_rows:  # a context's continuations spread over several packed rows
        monkeypatch.setattr(_hf_score, "_MAX_CONTINUATIONS_PER_ROW", 2)
        monkeypatch.setattr(_hf_score, "_MAX_ROW_BODY_TOKENS", 6)
    backend = backends[kind]
    requests = _requests()
    assert backend.scorer.packing
    packed = backend.loglikelihood(requests, batch_size=4)
    backend.scorer.packing = False
    try:
        plain = backend.loglikelihood(requests, batch_size=4)
    finally:
        backend.scorer.packing = True
    for a, b in zip(packed, plain, strict=True):
        assert abs(a.logprob - b.logprob) <= 1e-4
        assert a.is_greedy == b.is_greedy


@pytest.mark.parametrize("kind", KINDS)
def test_same_numbers_whatever_the_batch_size(backends: dict[str, TransformersBackend], kind: str) -> None:
    requests = _requests()
    runs = [backends[kind].loglikelihood(requests, batch_size=size) for size in (1, 3, 64)]
    for results in runs[1:]:
        assert max(abs(a.logprob - b.logprob) for a, b in zip(runs[0], results, strict=True)) <= 1e-4


def test_truncation_keeps_the_last_max_length_tokens(model_dirs: dict[str, Path]) -> None:
    backend = load_model(f"hf:{model_dirs['llama']},max_length=16")
    assert isinstance(backend, TransformersBackend)
    context = " ".join(["sea shells"] * 30)
    result = backend.loglikelihood([LoglikelihoodRequest(context, " by the shore")])[0]
    tok = backend.loaded.tokenizer
    context_ids = tok.encode(context)
    continuation_ids = tok.encode(context + " by the shore")[len(context_ids) :]
    window = (context_ids + continuation_ids)[-17:][:-1]
    with torch.inference_mode():
        logprobs = torch.log_softmax(backend.model(input_ids=torch.tensor([window])).logits[0], dim=-1)
    expected = logprobs[-len(continuation_ids) :].gather(1, torch.tensor(continuation_ids)[:, None]).sum()
    assert result.logprob == pytest.approx(float(expected), abs=1e-4)


def test_is_greedy_only_for_the_argmax_continuation(backends: dict[str, TransformersBackend]) -> None:
    scorer = backends["llama"].scorer
    context = tuple(backends["llama"].loaded.tokenizer.encode("The quick brown fox"))
    greedy: list[int] = []
    with torch.inference_mode():
        for _ in range(3):
            logits = backends["llama"].model(input_ids=torch.tensor([list(context) + greedy])).logits
            greedy.append(int(logits[0, -1].argmax()))
    other = [*greedy[:-1], (greedy[-1] + 1) % 50]
    (_, is_greedy), (_, is_other_greedy) = scorer.score(
        [(context, tuple(greedy)), (context, tuple(other))], 4
    )
    assert is_greedy and not is_other_greedy


def test_encode_pair_follows_hflm(backends: dict[str, TransformersBackend]) -> None:
    encoder = backends["llama"].encoder
    assert encoder.encode_pair("Answer: ", "yes") == encoder.encode_pair("Answer:", " yes")
    context, continuation = encoder.encode_pair("", "Hello")
    assert context == [encoder.prefix_token_id]
    assert continuation == backends["llama"].loaded.tokenizer.encode("Hello", add_special_tokens=False)
    # Text that already starts with the prefix token's string (a rendered chat turn) gets no second BOS.
    with_bos = encoder.encode("<s>Hello")
    assert with_bos[0] == encoder.prefix_token_id and with_bos[1] != encoder.prefix_token_id


@pytest.mark.parametrize("kind", KINDS)
def test_generation_stops_at_stop_strings(backends: dict[str, TransformersBackend], kind: str) -> None:
    backend = backends[kind]
    free = backend.generate([GenerateRequest("The quick brown fox", max_tokens=12)], batch_size=1)[0]
    assert free.num_tokens == 12 and free.text
    stop = free.text[len(free.text) // 2 :][:2]
    assert stop.strip(), f"degenerate sample text {free.text!r}"
    cut = free.text[: free.text.index(stop)]
    requests = [
        GenerateRequest("The quick brown fox", stop=(stop,), max_tokens=12),
        GenerateRequest("Water boils at one hundred degrees at sea level", max_tokens=3),
        GenerateRequest("The quick brown fox", max_tokens=12),
    ]
    batched = backend.generate(requests, batch_size=3)
    assert batched[0].text == cut and batched[0].num_tokens < 12
    assert batched[1].num_tokens == 3
    assert batched[2] == free  # left padding in a batch changes nothing
    assert backend.generate(requests[1:2], batch_size=1)[0] == batched[1]


def test_rolling_windows_match_lm_eval() -> None:
    lm_utils = pytest.importorskip("lm_eval.utils")
    for length in (0, 1, 5, 16, 17, 40):
        tokens = list(range(100, 100 + length))
        for window in (1, 4, 16):
            expected = [
                lm_utils.make_disjoint_window(pair)
                for pair in lm_utils.get_rolling_token_windows(
                    tokens, prefix_token=7, max_seq_len=window, context_len=1
                )
            ]
            assert list(rolling_windows(tokens, 7, window)) == expected


@pytest.mark.parametrize("max_length", [None, 12])
def test_rolling_equals_sum_over_tokens(model_dirs: dict[str, Path], max_length: int | None) -> None:
    spec = f"hf:{model_dirs['llama']}" + (f",max_length={max_length}" if max_length else "")
    backend = load_model(spec)
    assert isinstance(backend, TransformersBackend)
    text = "She sells sea shells by the sea shore; the shells she sells are surely sea shells."
    result = backend.loglikelihood_rolling([RollingRequest(text)], batch_size=2)[0]
    tokens = backend.loaded.tokenizer.encode(text)
    prefix = backend.encoder.prefix_token_id
    total = 0.0
    with torch.inference_mode():
        for context, continuation in rolling_windows(tokens, prefix, backend.max_length):
            ids = torch.tensor([context + continuation[:-1]])
            logprobs = torch.log_softmax(backend.model(input_ids=ids).logits[0], dim=-1)[-len(continuation) :]
            total += float(logprobs.gather(1, torch.tensor(continuation)[:, None]).sum())
    assert result.num_tokens == len(tokens)
    assert result.logprob == pytest.approx(total, abs=1e-3)
    if max_length is None:  # one window: the plain definition, every token after the prefix
        with torch.inference_mode():
            logits = backend.model(input_ids=torch.tensor([[prefix, *tokens[:-1]]])).logits[0]
        whole = torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(tokens)[:, None]).sum()
        assert result.logprob == pytest.approx(float(whole), abs=1e-3)


def test_family_detection(backends: dict[str, TransformersBackend]) -> None:
    from transformers import FalconMambaConfig, JambaConfig, Mamba2Config, Zamba2Config

    assert [backends[k].describe().family for k in KINDS] == ["transformer", "transformer", "ssm"]
    assert model_family(Mamba2Config()) == "ssm" and model_family(FalconMambaConfig()) == "ssm"
    assert model_family(JambaConfig()) == "hybrid" and model_family(Zamba2Config()) == "hybrid"


def test_describe_and_fingerprints(
    model_dirs: dict[str, Path], backends: dict[str, TransformersBackend]
) -> None:
    facts = backends["llama"].describe()
    assert facts.architecture == "LlamaForCausalLM"
    assert facts.parameters == sum(p.numel() for p in backends["llama"].model.parameters())
    assert facts.dtype == "float32" and facts.quantization is None and facts.bytes_on_disk > 0
    assert facts.context_window == 128 and backends["mamba"].describe().context_window is None
    reloaded = load_model(f"hf:{model_dirs['llama']}").describe()
    bf16 = load_model(f"hf:{model_dirs['llama']},dtype=bfloat16").describe()
    assert reloaded.fingerprint == facts.fingerprint
    assert bf16.fingerprint != facts.fingerprint and bf16.dtype == "bfloat16"
    assert backends["gemma3"].describe().fingerprint != facts.fingerprint


def test_option_typo_fails_with_a_suggestion(model_dirs: dict[str, Path]) -> None:
    with pytest.raises(SpecError, match="did you mean 'dtype'"):
        load_model(f"hf:{model_dirs['llama']},dtyp=bfloat16")
    with pytest.raises(SpecError, match="dtype"):
        load_model(f"hf:{model_dirs['llama']},dtype=float16")
    with pytest.raises(SpecError, match="revision"):
        load_model(f"hf:{model_dirs['llama']},revision=main")


def test_offline_hub_id_fails_fast_with_one_line() -> None:
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError) as info:
        load_model("hf:evalkit-tests-nonexistent/no-such-model-4711")
    assert time.monotonic() - started < 20
    message = str(info.value)
    assert "\n" not in message and "evalkit-tests-nonexistent/no-such-model-4711" in message
    assert "local directory" in message


def test_chat_template(
    model_dirs: dict[str, Path], backends: dict[str, TransformersBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    wrapped = backends["llama"].apply_chat_template("Hi?")
    assert wrapped == "<|user|>\nHi?\n<|assistant|>\n"
    assert load_model(f"hf:{model_dirs['llama']},chat_template=true").describe().chat_template
    monkeypatch.setattr(backends["mamba"].loaded.tokenizer, "chat_template", None)
    with pytest.raises(SpecError, match="no chat template"):
        backends["mamba"].apply_chat_template("Hi?")


def test_gguf_conversion_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evalkit.backends import _hf_load

    gguf_path = write_tiny_llama_gguf(tmp_path / "tiny-llama.gguf")
    first = load_model(f"gguf:{gguf_path}")
    converted = list((tmp_path / "evalkit-cache" / "converted").iterdir())
    assert [p.name.endswith("-float32") for p in converted] == [True]

    def no_conversion(*args: Any) -> Any:
        raise AssertionError("the second load must come from the conversion cache")

    monkeypatch.setattr(_hf_load, "_convert_gguf", no_conversion)
    second = load_model(f"hf:{tmp_path},gguf_file=tiny-llama.gguf")
    request = [LoglikelihoodRequest("The quick brown fox", " jumps over")]
    assert first.loglikelihood(request)[0] == second.loglikelihood(request)[0]
    facts = second.describe()
    assert facts.quantization == "gguf:ALL_F32 (dequantized to float32)"
    assert facts.fingerprint == first.describe().fingerprint
    assert facts.bytes_on_disk == gguf_path.stat().st_size


def test_verification_switches_off_a_wrong_packing(backends: dict[str, TransformersBackend]) -> None:
    from evalkit.backends._hf_score import PairScorer, probe_tokens

    backend = backends["llama"]
    scorer = PairScorer(backend.model, backend.max_length, "transformer")
    real_inputs = scorer._packed_inputs

    def leaky_inputs(batch: Any, width: int) -> dict[str, Any]:
        inputs = real_inputs(batch, width)
        inputs["attention_mask"] = torch.zeros_like(inputs["attention_mask"]).masked_fill(
            ~torch.ones(width, width, dtype=torch.bool).tril(), torch.finfo(torch.float32).min
        )  # plain causal: continuations see each other
        return inputs

    scorer._packed_inputs = leaky_inputs  # type: ignore[method-assign]
    scorer.calibrate(probe_tokens(backend.loaded.tokenizer), 1e-4)
    assert not scorer.packing and scorer.gathered_logits
    assert any(note.startswith("packing off: differs") for note in scorer.path_notes)


def test_importing_the_backend_does_not_import_torch() -> None:
    code = "import sys, evalkit.backends.hf, evalkit.backends.aliases; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_bfloat16_is_verified_in_float32_and_restored_exactly(model_dirs: dict[str, Path]) -> None:
    backend = load_model(f"hf:{model_dirs['gemma3']},dtype=bfloat16")
    assert isinstance(backend, TransformersBackend)
    assert backend.scoring_path == "packed+gathered-logits"  # bf16 rounding did not veto packing
    before = {name: t.clone() for name, t in backend.model.state_dict().items()}
    buffers = {name: t.dtype for name, t in backend.model.named_buffers()}
    backend.scorer.calibrate([5, 6, 7, 8, 9, 10, 11, 12])
    after = backend.model.state_dict()
    assert all(after[name].dtype == t.dtype and torch.equal(after[name], t) for name, t in before.items())
    assert {name: t.dtype for name, t in backend.model.named_buffers()} == buffers
    assert backend.model.dtype == torch.bfloat16
