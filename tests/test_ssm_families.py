"""State-space and hybrid families on tiny random models: classification, loading, and the scan patch.

transformers' torch scan for Mamba-1 style mixers restarts from a zero state on multi-token
inputs; `_hf_ssm` makes it continue from the cached state. The check is the definition: logits
of one forward equal those of the same tokens fed in three pieces through a cache.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from evalkit.backends import _hf_ssm, load_model  # noqa: E402
from evalkit.backends._hf_tokens import model_family  # noqa: E402
from evalkit.backends.hf import TransformersBackend  # noqa: E402
from evalkit.requests import GenerateRequest, LoglikelihoodRequest  # noqa: E402
from tests.conftest_hf import build_model, build_tokenizer, save_tiny_model  # noqa: E402

FAMILIES = {
    "mamba": "ssm",
    "mamba2": "ssm",
    "falcon_mamba": "ssm",
    "jamba": "hybrid",
    "zamba": "hybrid",
    "llama": "transformer",
    "gemma3": "transformer",
}
PATCHED = {"mamba", "falcon_mamba", "jamba", "zamba"}


@pytest.fixture(scope="module")
def models() -> dict[str, object]:
    tokenizer = build_tokenizer()
    return {kind: build_model(kind, len(tokenizer)) for kind in FAMILIES}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "evalkit-cache"))


def _ids(n: int, seed: int = 0) -> list[int]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(3, 400, (n,), generator=generator).tolist()  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", list(FAMILIES))
def test_family_classification(models: dict[str, object], kind: str) -> None:
    assert model_family(models[kind].config) == FAMILIES[kind]  # type: ignore[attr-defined]


def test_hybrid_configs_have_attention_and_mamba_layers(models: dict[str, object]) -> None:
    with torch.inference_mode():
        for kind in ("jamba", "zamba"):
            cache = models[kind](input_ids=torch.tensor([_ids(5)]), use_cache=True).cache  # type: ignore[operator]
            names = {type(layer).__name__ for layer in cache.layers}
            assert any("Linear" in n for n in names) and any(
                "Attention" in n or n == "DynamicLayer" for n in names
            )


@pytest.mark.parametrize("kind", list(FAMILIES))
def test_continued_scan_equals_single_pass(models: dict[str, object], kind: str) -> None:
    model = models[kind]
    assert bool(_hf_ssm.install_scan_patch(model)) == (kind in PATCHED)
    assert _hf_ssm.install_scan_patch(model) == _hf_ssm.install_scan_patch(model)  # idempotent
    for seed, length in ((0, 48), (1, 17)):
        assert _hf_ssm.continuation_error(model, _ids(length, seed), pieces=3) <= 1e-4


def test_time_chunked_scan_equals_one_chunk(
    models: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = models["mamba"]
    _hf_ssm.install_scan_patch(model)
    ids = torch.tensor([_ids(40)])
    with torch.inference_mode():
        whole = model(input_ids=ids).logits  # type: ignore[operator]
        monkeypatch.setattr(_hf_ssm, "SCAN_CHUNK", 7)
        chunked = model(input_ids=ids).logits  # type: ignore[operator]
    assert float((whole - chunked).abs().max()) <= 1e-5


@pytest.mark.parametrize("kind", ["mamba", "mamba2", "falcon_mamba", "jamba", "zamba"])
def test_load_describe_and_serve(tmp_path: Path, kind: str) -> None:
    backend = load_model(f"hf:{save_tiny_model(tmp_path, kind)}")
    assert isinstance(backend, TransformersBackend)
    assert backend.describe().family == FAMILIES[kind]
    assert bool(backend.scan_patch) == (kind in PATCHED)
    assert "packing off" in " ".join(backend.scorer.path_notes)  # recurrent layers cannot pack
    result = backend.loglikelihood([LoglikelihoodRequest("The quick brown", " fox")])[0]
    assert result.logprob < 0 and result.num_tokens >= 1
    generated = backend.generate([GenerateRequest("Water boils at", max_tokens=4)])[0]
    assert 1 <= generated.num_tokens <= 4
