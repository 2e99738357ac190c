"""Decode cost against context length: a transformer's KV cache grows, an SSM's state does not.

Wall times are noisy on a shared CPU, so the shape is asserted on what the engine records
deterministically beside them: the cache/state bytes after each context and the model's
FLOPs per token. One `real` test runs the shipped efficiency-quick suite through the CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from evalkit.backends import load_model
from evalkit.efficiency import measure_backend
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
PEAKS = {"matmul_flops_per_s": {"float32": 1e11, "bfloat16": 2e11}, "memory_bytes_per_s": 1e10}


@pytest.fixture(scope="module")
def curves(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    root = tmp_path_factory.mktemp("efficiency-models")
    measured = {}
    for kind in ("llama", "mamba"):
        backend = load_model(f"hf:{save_tiny_model(root, kind)}")
        figures = measure_backend(backend, backend.describe(), SETTINGS, host_peaks=PEAKS)
        figures["flops"] = [backend.flops_per_token(n) for n in LENGTHS]  # type: ignore[attr-defined]
        measured[kind] = figures
    return measured


def test_both_families_have_a_decode_point_at_every_length(curves: dict[str, dict[str, Any]]) -> None:
    for kind, figures in curves.items():
        points = figures["curves"]["decode"]
        assert [p["context_length"] for p in points] == LENGTHS, kind
        for point in points:
            assert point["time_per_output_token_s"] > 0 and point["time_to_first_token_s"] > 0
            assert point["stats"]["time_per_output_token_s"]["n"] == 2


def test_transformer_state_grows_linearly_and_ssm_state_is_constant(
    curves: dict[str, dict[str, Any]],
) -> None:
    llama = [p["state_bytes"] for p in curves["llama"]["curves"]["decode"]]
    mamba = [p["state_bytes"] for p in curves["mamba"]["curves"]["decode"]]
    per_token = llama[0] / LENGTHS[0]
    assert per_token > 0 and llama == [per_token * n for n in LENGTHS]  # exactly one K and V per token
    assert mamba[0] > 0 and len(set(mamba)) == 1  # the recurrent state does not depend on context
    assert curves["llama"]["flops"][0] < curves["llama"]["flops"][-1]
    assert len(set(curves["mamba"]["flops"])) == 1


def test_lengths_beyond_the_window_are_skipped_with_a_reason(curves: dict[str, dict[str, Any]]) -> None:
    skipped = curves["llama"]["skipped"]  # the tiny llama's window is 128
    assert [(s["phase"], s["length"]) for s in skipped] == [("prefill", 500)]
    assert "window of 128" in skipped[0]["reason"]
    assert curves["llama"]["prefill_prompt_length"] == 96
    assert curves["llama"]["bits_per_weight"] == pytest.approx(32, rel=0.05)  # float32 safetensors


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
    assert figures["parameters"] > 100_000_000 and 4 < figures["bits_per_weight"] < 8  # Q4_1 GGUF
    assert figures["peak_memory_bytes"] > figures["weight_bytes"]
    assert [p["context_length"] for p in figures["curves"]["decode"]] == [64, 256, 1024]
    states = [p["state_bytes"] for p in figures["curves"]["decode"]]
    assert states == sorted(states) and states[-1] == states[0] * 16
    assert 0 < figures["mfu"] < 1.5 and 0 < figures["mbu"] < 1.5
