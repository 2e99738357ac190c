"""Decode cost against context length: a transformer's KV cache grows, an SSM's state does not.

Wall times are noisy on a shared CPU, so the shape is asserted on what the engine records
deterministically beside them: the cache/state bytes after each context and the model's
FLOPs per token. One `real` test runs the shipped efficiency-quick suite through the CLI.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from evalkit.backends import load_model
from evalkit.efficiency import measure_backend
from evalkit.results import EfficiencyFigures, HostPeaks, MatmulPeaks
from evalkit.specs.task import EfficiencySpec
from tests.conftest_hf import save_tiny_model

LENGTHS = [8, 32, 96]
SETTINGS = EfficiencySpec(
    prompt_lengths=[*LENGTHS, 500],
    context_lengths=LENGTHS,
    decode_tokens=2,
    warmup=0,
    min_repetitions=1,
    min_seconds=0.0,
)
PEAKS = HostPeaks(matmul_flops_per_s=MatmulPeaks(float32=1e11, bfloat16=2e11), memory_bytes_per_s=1e10)
Measured = dict[str, tuple[EfficiencyFigures, list[float]]]  # kind -> (figures, FLOPs per token)


@pytest.fixture(scope="module")
def curves(tmp_path_factory: pytest.TempPathFactory) -> Measured:
    root = tmp_path_factory.mktemp("efficiency-models")
    measured = {}
    for kind in ("llama", "mamba"):
        backend = load_model(f"hf:{save_tiny_model(root, kind)}")
        figures = measure_backend(backend, backend.describe(), SETTINGS, host_peaks=PEAKS)
        flops = [backend.flops_per_token(n) for n in LENGTHS]  # type: ignore[attr-defined]
        measured[kind] = (figures, flops)
    return measured


def test_both_families_have_a_decode_point_at_every_length(curves: Measured) -> None:
    for kind, (figures, _flops) in curves.items():
        points = figures.curves.decode
        assert [p.context_length for p in points] == LENGTHS, kind
        for point in points:
            assert point.time_per_output_token_s > 0 and point.time_to_first_token_s > 0
            assert point.stats.time_per_output_token_s.n == 2


def test_transformer_state_grows_linearly_and_ssm_state_is_constant(curves: Measured) -> None:
    (llama_figures, llama_flops), (mamba_figures, mamba_flops) = curves["llama"], curves["mamba"]
    llama = [p.state_bytes or 0 for p in llama_figures.curves.decode]
    mamba = [p.state_bytes or 0 for p in mamba_figures.curves.decode]
    per_token = llama[0] / LENGTHS[0]
    assert per_token > 0 and llama == [per_token * n for n in LENGTHS]  # exactly one K and V per token
    assert mamba[0] > 0 and len(set(mamba)) == 1  # the recurrent state does not depend on context
    assert llama_flops[0] < llama_flops[-1]
    assert len(set(mamba_flops)) == 1


def test_lengths_beyond_the_window_are_skipped_with_a_reason(curves: Measured) -> None:
    llama = curves["llama"][0]
    skipped = llama.skipped  # the tiny llama's window is 128
    assert [(s.phase, s.length) for s in skipped] == [("prefill", 500)]
    assert "window of 128" in skipped[0].reason
    assert llama.prefill_prompt_length == 96
    assert llama.bits_per_weight == pytest.approx(32, rel=0.05)  # float32 safetensors


@pytest.mark.real
def test_efficiency_quick_suite_on_smollm2_through_the_cli(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from evalkit.cli.main import cli
    from evalkit.results.store import ResultsStore

    results = tmp_path / "results"
    args = ["run", "-m", "smollm2-135m", "--suite", "efficiency-quick", "--results", str(results), "-q"]
    outcome = CliRunner().invoke(cli, args)
    assert outcome.exit_code == 0, outcome.output
    (record,), _problems = ResultsStore(results).read()
    figures = record.efficiency
    assert record.status == "ok" and figures is not None
    assert (figures.parameters or 0) > 100_000_000 and 4 < (figures.bits_per_weight or 0) < 8  # Q4_1 GGUF
    assert (figures.peak_memory_bytes or 0) > (figures.weight_bytes or 0) > 0
    assert [p.context_length for p in figures.curves.decode] == [64, 256, 1024]
    states = [p.state_bytes or 0 for p in figures.curves.decode]
    assert states == sorted(states) and states[-1] == states[0] * 16
    assert 0 < (figures.mfu or 0) < 1.5 and 0 < (figures.mbu or 0) < 1.5
