"""Quantized variants (`quantize=`) of the transformers backend, on tiny random models.

Tolerances are mean |Δ log p| per continuation token against the float32 model, over the same
requests as `test_backend_hf`. Observed on the tiny llama (torch 2.13 CPU, optimum-quanto 0.2.7):
int8-dynamic 0.078, int8 0.018, int4 0.24 nats/token. Random weights (init 0.2, hidden 64) are
harsher on quantization than trained ones, so the bounds are ~2x the observed figures: loose enough
for other CPUs, tight enough to catch a variant that ignores its weights or mis-scales them.
"""

from __future__ import annotations

import importlib.util
import statistics
import time
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from evalkit.backends import load_model  # noqa: E402
from evalkit.backends.hf import TransformersBackend  # noqa: E402
from evalkit.errors import BackendUnavailableError, SpecError  # noqa: E402
from tests.conftest_hf import save_tiny_model, write_tiny_llama_gguf  # noqa: E402
from tests.test_backend_hf import _requests  # noqa: E402

HAS_QUANTO = importlib.util.find_spec("optimum.quanto") is not None
needs_quanto = pytest.mark.skipif(not HAS_QUANTO, reason="optimum-quanto not installed (the quant extra)")
TOLERANCE = {"int8-dynamic": 0.16, "int8": 0.04, "int4": 0.5}  # mean nats/token, see the docstring
VARIANTS = [
    "int8-dynamic",
    pytest.param("int8", marks=needs_quanto),
    pytest.param("int4", marks=needs_quanto),
]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-quant")
    return {kind: save_tiny_model(root, kind) for kind in ("llama", "mamba")}


@pytest.fixture(scope="module")
def reference(model_dirs: dict[str, Path]) -> TransformersBackend:
    backend = load_model(f"hf:{model_dirs['llama']}")
    assert isinstance(backend, TransformersBackend)
    return backend


@pytest.fixture(scope="module")
def variants(model_dirs: dict[str, Path]) -> dict[str, Any]:
    return {}  # filled lazily, so a missing optional package skips only its own tests


def _variant(variants: dict[str, Any], model_dirs: dict[str, Path], name: str) -> TransformersBackend:
    if name not in variants:
        variants[name] = load_model(f"hf:{model_dirs['llama']},quantize={name}")
    backend = variants[name]
    assert isinstance(backend, TransformersBackend)
    return backend


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "evalkit-cache"))


def _mean_delta_per_token(backend: TransformersBackend, reference: TransformersBackend) -> float:
    requests = _requests()
    ours = backend.loglikelihood(requests)
    theirs = reference.loglikelihood(requests)
    return statistics.fmean(
        abs(a.logprob - b.logprob) / a.num_tokens for a, b in zip(ours, theirs, strict=True)
    )


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_loglikelihoods_are_close_to_float32(
    variants: dict[str, Any], model_dirs: dict[str, Path], reference: TransformersBackend, name: str
) -> None:
    backend = _variant(variants, model_dirs, name)
    delta = _mean_delta_per_token(backend, reference)
    assert 0 < delta < TOLERANCE[name], f"{name}: mean |Δ log p| {delta:.4f} nats/token"


@needs_quanto
def test_int4_loses_more_than_int8(
    variants: dict[str, Any], model_dirs: dict[str, Path], reference: TransformersBackend
) -> None:
    int8 = _mean_delta_per_token(_variant(variants, model_dirs, "int8"), reference)
    int4 = _mean_delta_per_token(_variant(variants, model_dirs, "int4"), reference)
    assert int8 < int4


@pytest.mark.parametrize("name", VARIANTS)
def test_numbers_do_not_depend_on_the_batch_size(
    variants: dict[str, Any], model_dirs: dict[str, Path], name: str
) -> None:
    backend = _variant(variants, model_dirs, name)
    requests = _requests()
    one = [r.logprob for r in backend.loglikelihood(requests, batch_size=1)]
    many = [r.logprob for r in backend.loglikelihood(requests, batch_size=16)]
    assert many == pytest.approx(one, abs=1e-4)


@needs_quanto
@pytest.mark.parametrize("name", ["int8", "int4"])
def test_weight_only_keeps_the_verified_packed_path(
    variants: dict[str, Any], model_dirs: dict[str, Path], name: str
) -> None:
    assert _variant(variants, model_dirs, name).scoring_path == "packed+gathered-logits"


def test_dynamic_int8_falls_back_to_one_plain_row_per_forward(
    variants: dict[str, Any], model_dirs: dict[str, Path]
) -> None:
    backend = _variant(variants, model_dirs, "int8-dynamic")
    assert not backend.scorer.packing
    assert backend.scoring_path.startswith("plain+")
    assert any("one row per forward" in note for note in backend.scorer.path_notes)


@pytest.mark.parametrize("name", VARIANTS)
def test_facts_name_the_variant_and_keep_the_reference_shape(
    variants: dict[str, Any], model_dirs: dict[str, Path], reference: TransformersBackend, name: str
) -> None:
    facts, base = _variant(variants, model_dirs, name).describe(), reference.describe()
    library = "torch" if name == "int8-dynamic" else "optimum-quanto"
    assert facts.quantization is not None and facts.quantization.startswith(name)
    assert f"({library} " in facts.quantization
    assert base.quantization is None
    assert facts.dtype == "float32"
    assert facts.parameters == base.parameters
    assert facts.bytes_on_disk == base.bytes_on_disk
    assert facts.architecture == base.architecture


def test_fingerprints_differ_per_variant(
    variants: dict[str, Any], model_dirs: dict[str, Path], reference: TransformersBackend
) -> None:
    names = ["int8-dynamic", *(["int8", "int4"] if HAS_QUANTO else [])]
    prints = [reference.describe().fingerprint]
    prints += [_variant(variants, model_dirs, name).describe().fingerprint for name in names]
    assert len(set(prints)) == len(prints)
    again = load_model(f"hf:{model_dirs['llama']},quantize=int8-dynamic").describe().fingerprint
    assert again == prints[1]  # and stable across loads: the response cache can key on it


def test_gguf_is_dequantized_then_quantized(tmp_path: Path) -> None:
    gguf_path = write_tiny_llama_gguf(tmp_path / "tiny.gguf")
    plain = load_model(f"gguf:{gguf_path}").describe()
    facts = load_model(f"gguf:{gguf_path},quantize=int8-dynamic").describe()
    assert facts.quantization is not None
    assert facts.quantization.startswith(f"{plain.quantization} + int8-dynamic (torch ")
    assert facts.fingerprint != plain.fingerprint
    assert facts.bytes_on_disk == gguf_path.stat().st_size


@needs_quanto
def test_weight_only_runs_on_an_ssm(model_dirs: dict[str, Path]) -> None:
    backend = load_model(f"hf:{model_dirs['mamba']},quantize=int4")
    assert backend.describe().family == "ssm"
    assert all(r.logprob < 0 for r in backend.loglikelihood(_requests()[:5]))


def test_dynamic_int8_on_mamba_fails_with_one_clear_line(model_dirs: dict[str, Path]) -> None:
    with pytest.raises(BackendUnavailableError, match="cannot run quantize=int8-dynamic on MambaForCausalLM"):
        load_model(f"hf:{model_dirs['mamba']},quantize=int8-dynamic")


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("quantize=int-8", r"unknown quantization 'int-8'; did you mean 'int8'"),
        ("quantize=fp8", r"unknown quantization 'fp8'; known: int8-dynamic, int8, int4"),
        ("quantize=int8-dynamic,dtype=bfloat16", r"runs in float32 on CPU; drop dtype=bfloat16"),
        ("quantise=int8", r"unknown option 'quantise'; did you mean 'quantize'"),
    ],
)
def test_bad_quantize_options_fail_before_loading(option: str, message: str, tmp_path: Path) -> None:
    started = time.perf_counter()
    with pytest.raises(SpecError, match=message) as caught:
        load_model(f"hf:{tmp_path},{option}")  # an empty folder: the check must come first
    assert "\n" not in str(caught.value)
    assert time.perf_counter() - started < 1.0


def test_missing_quanto_names_the_pip_command(
    model_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_find_spec = importlib.util.find_spec

    def without_quanto(name: str, *args: Any) -> Any:
        return None if name.startswith("optimum.quanto") else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_quanto)
    with pytest.raises(BackendUnavailableError, match=r"pip install optimum-quanto"):
        load_model(f"hf:{model_dirs['llama']},quantize=int4")


@pytest.mark.real
def test_smollm2_int8_dynamic_against_its_reference_on_arc_easy(tmp_path: Path) -> None:
    """Both records stored, same samples; prints accuracies, mean |Δ| per choice and wall times."""
    from evalkit.results.store import ResultsStore
    from evalkit.runner.evaluate import EvalConfig, evaluate
    from tests.test_reference_results import require_smollm2

    require_smollm2()
    config = EvalConfig(limit=20, use_cache=False, show_progress=False, results_dir=tmp_path)
    records, walls = [], []
    for spec in ("smollm2-135m", "smollm2-135m,quantize=int8-dynamic"):
        started = time.perf_counter()
        records.append(evaluate([spec], ["arc_easy"], config=config).records[0])
        walls.append(time.perf_counter() - started)
    assert all(r.status == "ok" for r in records), [r.error for r in records]
    reference, variant = records
    assert variant.model.fingerprint != reference.model.fingerprint
    assert variant.model.parameters == reference.model.parameters
    assert (
        variant.model.quantization
        == f"{reference.model.quantization} + int8-dynamic (torch {torch.__version__})"
    )
    store = ResultsStore(tmp_path)
    stored, _ = store.read()
    assert {r.model.fingerprint for r in stored} == {reference.model.fingerprint, variant.model.fingerprint}
    ours, theirs = store.read_samples(variant), store.read_samples(reference)
    assert [s.sample_id for s in ours] == [s.sample_id for s in theirs]
    deltas: list[float] = []
    for mine, ref in zip(ours, theirs, strict=True):
        assert isinstance(mine.response, list) and isinstance(ref.response, list)
        deltas += [abs(a - b) for a, b in zip(mine.response, ref.response, strict=True)]
    accuracy = [r.metrics[r.task.primary_metric].value for r in records]
    print(
        f"\nARC-Easy x20: acc reference {accuracy[0]:.3f} ({walls[0]:.1f} s), "
        f"int8-dynamic {accuracy[1]:.3f} ({walls[1]:.1f} s); "
        f"mean |Δ loglik| per choice {statistics.fmean(deltas):.4f} nats (max {max(deltas):.4f})"
    )
    # Observed: 4.94 nats per choice (~1.6 per token): torch's dynamic int8 quantizes activations
    # per tensor (7-bit on x86), which SmolLM2's activation outliers punish. A loose sanity bound.
    assert statistics.fmean(deltas) < 10.0
