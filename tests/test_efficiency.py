"""The efficiency engine: repetition policy, statistics, RSS sampling, the task kind and records."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.backends import load_model
from evalkit.efficiency import (
    EfficiencyError,
    RepetitionPolicy,
    measure_backend,
    measure_in_subprocess,
    percentile,
    random_tokens,
    repeat,
    summarize,
)
from evalkit.errors import SpecError
from evalkit.kinds import check_task
from evalkit.results import EfficiencyFigures, EfficiencySettings, HostPeaks, MatmulPeaks
from evalkit.specs.task import EfficiencySpec, load_task_file

FAKE_PEAKS = HostPeaks(matmul_flops_per_s=MatmulPeaks(float32=1e11, bfloat16=2e11), memory_bytes_per_s=1e10)
TINY = EfficiencySpec(
    prompt_lengths=[8, 32],
    context_lengths=[8, 32],
    decode_tokens=3,
    warmup=0,
    min_repetitions=2,
    min_seconds=0.0,
)


class StepClock:
    """A clock that advances by `step` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_repeat_stops_at_min_count_when_time_is_already_spent() -> None:
    calls: list[int] = []
    policy = RepetitionPolicy(warmup=2, min_repetitions=5, min_seconds=1.0)
    results = repeat(lambda: calls.append(1) or len(calls), policy, clock=StepClock(10.0))
    assert len(results) == 5  # min_seconds was met after the first run; the count rules
    assert len(calls) == 7  # warm-up runs happen but are not recorded
    assert results[0] == 3


def test_repeat_keeps_going_until_min_seconds() -> None:
    policy = RepetitionPolicy(warmup=0, min_repetitions=2, min_seconds=1.0)
    results = repeat(lambda: 0.0, policy, clock=StepClock(0.125))
    assert len(results) == 8  # the clock advances 1/8 s per repetition


def test_repeat_is_capped() -> None:
    policy = RepetitionPolicy(warmup=0, min_repetitions=1, min_seconds=1e9, max_repetitions=7)
    assert len(repeat(lambda: 0.0, policy, clock=StepClock(0.0))) == 7


def test_summary_statistics() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 100.0]
    summary = summarize(values)
    assert summary.median == 3.0 and summary.min == 1.0 and summary.max == 100.0 and summary.n == 5
    assert summary.p95 == pytest.approx(80.8)  # numpy's linear interpolation: 4 + 0.8 * 96
    assert summary.cv == pytest.approx((7610 / 4) ** 0.5 / 22)  # sample stdev / mean
    assert percentile([5.0], 95) == 5.0
    assert summarize([2.0]).cv == 0.0
    with pytest.raises(ValueError):
        summarize([])


def test_rss_sampler_sees_an_allocation() -> None:
    # In a fresh interpreter: inside the test process, memory freed by earlier tests stays resident
    # and the allocator reuses it, so a new allocation need not raise RSS at all.
    code = (
        "import time\n"
        "from evalkit.efficiency import PeakRssSampler\n"
        "size = 200 * 1024 * 1024\n"
        "with PeakRssSampler(interval_s=0.001) as sampler:\n"
        "    block = b'\\x01' * size\n"
        "    time.sleep(0.05)\n"
        "    del block\n"
        "print(sampler.peak_bytes - sampler.baseline_bytes, sampler.samples)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    grown, samples = (int(v) for v in out.stdout.split())
    assert grown >= 200 * 1024 * 1024 * 0.9
    assert samples > 0


def test_random_tokens_are_exact_seeded_and_avoid_special_ids() -> None:
    tokens = random_tokens(50, 500, "s", excluded=frozenset({0, 1, 2}))
    assert len(tokens) == 500 and all(3 <= t < 50 for t in tokens)
    assert tokens == random_tokens(50, 500, "s", excluded=frozenset({0, 1, 2}))
    assert tokens != random_tokens(50, 500, "t", excluded=frozenset({0, 1, 2}))


def test_fake_backend_curves_and_figures() -> None:
    backend = load_model("fake,context_window=40")
    settings = TINY.model_copy(update={"prompt_lengths": [8, 32, 64], "context_lengths": [8, 32, 40]})
    figures = measure_backend(backend, backend.describe(), settings, host_peaks=FAKE_PEAKS)
    assert [p.prompt_length for p in figures.curves.prefill] == [8, 32]
    assert [p.context_length for p in figures.curves.decode] == [8, 32]
    assert {(s.phase, s.length) for s in figures.skipped} == {("prefill", 64), ("decode", 40)}
    assert "window of 40" in figures.skipped[0].reason
    for key in ("prefill_tokens_per_s", "decode_tokens_per_s", "time_per_output_token_s", "mfu", "mbu"):
        assert figures.figure(key) is not None, key
    point = figures.curves.decode[0]
    assert point.stats.time_per_output_token_s.n == 2 * 3  # 2 repetitions x 3 steps after the first
    assert point.time_per_output_token_p95_s >= point.time_per_output_token_s
    assert figures.bits_per_weight is None  # the fake has no file on disk
    assert figures.settings == EfficiencySettings.model_validate(settings.model_dump(mode="json"))
    assert figures.host_peaks == FAKE_PEAKS and figures.load_time_s is None  # the caller's figures
    assert EfficiencyFigures.model_validate_json(figures.model_dump_json()) == figures


def test_settings_in_the_record_mirror_the_spec_field_for_field() -> None:
    # The record keeps its own copy of the spec's shape (records know nothing of specs): a new spec
    # field must be added to EfficiencySettings too, or measuring would fail at the record.
    assert list(EfficiencySettings.model_fields) == list(EfficiencySpec.model_fields)


def test_without_host_peaks_utilisation_is_undefined_not_zero() -> None:
    backend = load_model("fake")
    figures = measure_backend(backend, backend.describe(), TINY, host_peaks=None)
    assert figures.mfu is None and figures.mbu is None and figures.host_peaks is None
    assert all(p.mfu is None for p in figures.curves.prefill)
    assert all(p.mbu is None for p in figures.curves.decode)
    assert figures.figure("decode_tokens_per_s") is not None


def test_a_backend_without_timing_support_is_a_clear_error() -> None:
    backend = load_model("fake")
    with pytest.raises(EfficiencyError, match="no TimingProbe"):
        measure_backend(object(), backend.describe(), TINY, host_peaks=None)


def test_spec_rejects_non_positive_lengths_and_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "eff.yaml"
    path.write_text("name: eff\nkind: efficiency\nefficiency:\n  prompt_lengths: [128, 0]\n")
    with pytest.raises(SpecError, match=r"eff.yaml:4"):
        load_task_file(path)
    path.write_text("name: eff\nkind: efficiency\nefficiency:\n  decode_tokens: 4\n  prompt_lenghts: [1]\n")
    with pytest.raises(SpecError, match=r"eff.yaml:5.*prompt_lengths"):
        load_task_file(path)
    path.write_text("name: eff\nkind: efficiency\n")
    assert load_task_file(path).dataset.mirrors == []  # no dataset needed for this kind
    path.write_text("name: eff\nkind: generate\n")
    with pytest.raises(SpecError, match=r"eff\.yaml:1: kind generate needs a dataset block"):
        check_task(load_task_file(path))  # the generate kind's own check, run when a run is planned


def test_efficiency_task_stores_a_record_via_a_subprocess(tmp_path: Path) -> None:
    from evalkit.runner.evaluate import EvalConfig, evaluate
    from evalkit.specs import Catalogue

    (tmp_path / "eff.yaml").write_text(
        "name: eff\nkind: efficiency\nsummary: tiny\nefficiency:\n"
        "  prompt_lengths: [16, 64]\n  context_lengths: [16, 64]\n  decode_tokens: 4\n"
        "  warmup: 0\n  min_repetitions: 2\n  min_seconds: 0.0\n"
    )
    config = EvalConfig(results_dir=tmp_path / "results", show_progress=False)
    summary = evaluate(["fake"], ["eff"], config=config, catalogue=Catalogue([tmp_path]))
    (record,) = summary.records
    assert record.status == "ok", record.error
    figures = record.efficiency
    assert figures is not None and figures.isolated is True
    for key in (
        "load_time_s",
        "parameters",
        "peak_memory_bytes",
        "load_peak_memory_bytes",
        "rss_samples",
        "prefill_tokens_per_s",
        "decode_tokens_per_s",
        "time_to_first_token_s",
        "time_per_output_token_s",
        "time_per_output_token_p95_s",
        "mfu",
        "mbu",
        "measure_time_s",
    ):
        assert figures.figure(key) is not None, key
    assert figures.bits_per_weight is None and figures.wall_time_s is None  # the fake has no file
    assert figures.peak_memory_bytes is not None and figures.baseline_memory_bytes is not None
    assert figures.peak_memory_bytes >= figures.baseline_memory_bytes > 0
    assert figures.host_peaks is not None and (figures.host_peaks.matmul_flops_per_s.float32 or 0) > 0
    assert [p.context_length for p in figures.curves.decode] == [16, 64]
    assert record.metrics["decode_tokens_per_s"].higher_is_better
    assert not record.metrics["time_per_output_token_s"].higher_is_better
    assert not any(m.bounded for m in record.metrics.values())
    assert record.task.kind == "efficiency" and record.task.primary_metric == "decode_tokens_per_s"


def test_a_failing_child_becomes_a_clear_error() -> None:
    with pytest.raises(EfficiencyError, match="nosuchmodel"):
        measure_in_subprocess("nosuchmodel", TINY)


def test_roofline_is_recomputed_from_achieved_rates_and_a_reprobe_only_raises_peaks() -> None:
    from evalkit.efficiency._engine import apply_roofline, utilisation_exceeds_one
    from evalkit.efficiency._probe import _best_of

    backend = load_model("fake")
    figures = measure_backend(backend, backend.describe(), TINY, host_peaks=FAKE_PEAKS)
    slow_host = HostPeaks(matmul_flops_per_s=MatmulPeaks(float32=1.0), memory_bytes_per_s=1.0)
    slow = apply_roofline(figures, slow_host)
    assert utilisation_exceeds_one(slow) and slow.host_peaks is slow_host
    assert not utilisation_exceeds_one(figures)  # figures are values: the original is unchanged
    again = apply_roofline(slow, FAKE_PEAKS)
    point = again.curves.prefill[-1]
    assert again.mfu == point.mfu == pytest.approx(point.flops_per_s / 1e11)
    assert (
        again.mbu
        == again.curves.decode[0].mbu
        == pytest.approx(again.curves.decode[0].weight_bytes_per_s / 1e10)
    )
    merged = _best_of(
        {"matmul_flops_per_s": {"float32": 5.0, "bfloat16": 9.0}, "memory_bytes_per_s": 2.0},
        {"matmul_flops_per_s": {"float32": 7.0, "bfloat16": 1.0}, "memory_bytes_per_s": 3.0},
    )
    assert merged["matmul_flops_per_s"] == {"float32": 7.0, "bfloat16": 9.0}
    assert merged["memory_bytes_per_s"] == 3.0


def test_the_matmul_probe_stays_short_where_a_dtype_is_slow(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a CPU without native bf16 one 2048² bfloat16 product took 62 s: the probe must not wait."""
    import time

    import torch

    from evalkit.efficiency._probe import _matmul_rate

    real = torch.matmul

    def emulated(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.dtype == torch.bfloat16:  # 62 s at 2048², scaling with the cube of the side
            time.sleep(62.0 * (a.shape[0] / 2048) ** 3)
            return real(a[:1], b)
        return a  # a dtype with native kernels: (emulated as) no time at all, whatever the load

    monkeypatch.setattr(torch, "matmul", emulated)
    started = time.perf_counter()
    rate, side = _matmul_rate("bfloat16", 0.5, 2048)
    assert time.perf_counter() - started < 3.0
    assert side == 256 and rate > 0
    _, float32_side = _matmul_rate("float32", 0.01, 2048)
    assert float32_side == 2048  # a fast dtype still grows to the full side


def test_a_measurement_that_runs_out_of_time_is_a_failure_not_bad_input(tmp_path: Path) -> None:
    from evalkit.efficiency._engine import MeasurementFailedError
    from evalkit.runner.evaluate import EvalConfig, evaluate
    from evalkit.specs import Catalogue

    with pytest.raises(MeasurementFailedError, match=r"did not finish within 0\.01 s"):
        measure_in_subprocess("fake", TINY.model_copy(update={"timeout_s": 0.01}))
    (tmp_path / "eff.yaml").write_text("name: eff\nkind: efficiency\nefficiency:\n  timeout_s: 0.01\n")
    config = EvalConfig(results_dir=tmp_path / "results", show_progress=False)
    summary = evaluate(["fake"], ["eff"], config=config, catalogue=Catalogue([tmp_path]))
    (record,) = summary.records
    assert record.status == "error" and "did not finish within" in (record.error or "")
    assert summary.exit_code == 1  # the run failed; nothing the user typed was wrong
