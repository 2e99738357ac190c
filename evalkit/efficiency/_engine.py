"""The measurement itself: prefill and decode curves of a loaded `TimingProbe` backend.

Inputs are random token ids of exact lengths from a generator seeded per (phase, length), so
two models (or two runs) see the same lengths and no tokenizer quirk changes a prompt's size.
Figures at every length go into `curves`; the headline figures are taken at the longest
measured prompt (prefill throughput at steady state) and the shortest measured context (the
decode speed a chat user sees). Roofline ratios divide by the measured peaks of the device the
model ran on (the host's CPU, or its GPU: `DevicePlacement`).
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

from evalkit.backends.capabilities import TimingProbe
from evalkit.efficiency._measure import Clock, RepetitionPolicy, Summary, repeat, summarize
from evalkit.efficiency._memory import PeakRssSampler
from evalkit.errors import EvalkitError
from evalkit.results import (
    DecodePoint,
    DecodeStats,
    EfficiencyCurves,
    EfficiencyFigures,
    EfficiencySettings,
    HostPeaks,
    ModelFacts,
    PrefillPoint,
    PrefillStats,
    SkippedLength,
    TimingStats,
)
from evalkit.specs.task import EfficiencySpec


class EfficiencyError(EvalkitError):
    """The model cannot be measured as asked (no timing support, nothing fits its window): bad input."""


class MeasurementFailedError(RuntimeError):
    """The measurement itself failed (the child crashed, ran out of time or reported garbage).

    Not an `EvalkitError`: nothing the user typed was wrong, so the task's record says why and
    the run exits 1, not 2.
    """


@runtime_checkable
class StateSizeProbe(Protocol):
    """Optional: bytes of KV cache / recurrent state held after `token_ids` (deterministic).

    Wall times are noisy; the cache size is the deterministic witness of how a model's decode
    cost scales with context (linear for attention, constant for an SSM's state).
    """

    def timing_state_bytes(self, token_ids: Sequence[int]) -> int: ...


@runtime_checkable
class DevicePlacement(Protocol):
    """Optional: the torch device the timed passes run on ('cpu', 'cuda:0', 'mps').

    A backend without it runs on the CPU. On an accelerator the engine reads that device's peak
    memory and divides by that device's measured peaks; the backend's timings use its clock.
    """

    @property
    def timing_device(self) -> str: ...


def timing_device(backend: object) -> str:
    """Where `backend` runs its timed passes: its `DevicePlacement`, else 'cpu'."""
    return backend.timing_device if isinstance(backend, DevicePlacement) else "cpu"


def random_tokens(
    vocab_size: int, length: int, seed: str, excluded: frozenset[int] = frozenset()
) -> list[int]:
    """`length` ids in [0, vocab_size), avoiding `excluded` (special tokens) when that leaves any."""
    rng = random.Random(seed)
    allowed = vocab_size - len([i for i in excluded if 0 <= i < vocab_size])
    tokens: list[int] = []
    while len(tokens) < length:
        token = rng.randrange(vocab_size)
        if token not in excluded or allowed <= 0:
            tokens.append(token)
    return tokens


def measure_backend(
    backend: object,
    facts: ModelFacts,
    settings: EfficiencySpec,
    *,
    host_peaks: HostPeaks | None,
    sampler: PeakRssSampler | None = None,
    clock: Clock = time.perf_counter,
) -> EfficiencyFigures:
    """Every figure of the efficiency record except load time and the process-wide memory peak."""
    if not isinstance(backend, TimingProbe):
        raise EfficiencyError(
            f"{facts.name}: the {facts.backend} backend cannot time raw forward passes (no TimingProbe)"
        )
    policy = RepetitionPolicy(settings.warmup, settings.min_repetitions, settings.min_seconds)
    window = facts.context_window
    excluded = frozenset(int(i) for i in getattr(backend, "timing_special_ids", ()) or ())
    vocab = backend.vocab_size
    dtype: Literal["float32", "bfloat16"] = "bfloat16" if facts.dtype == "bfloat16" else "float32"
    weight_bytes = backend.weight_bytes()
    skipped: list[SkippedLength] = []
    started = clock()

    prefill: list[PrefillPoint] = []
    for length in sorted(set(settings.prompt_lengths)):
        if window is not None and length > window:
            reason = f"prompt {length} exceeds the model's window of {window}"
            skipped.append(SkippedLength(phase="prefill", length=length, reason=reason))
            continue
        ids = random_tokens(vocab, length, f"{settings.seed}:prefill:{length}", excluded)
        times = repeat(functools.partial(backend.timing_prefill, ids), policy, clock)
        rates = summarize([length / t for t in times])
        seconds = summarize(times)
        prefill.append(
            PrefillPoint(
                prompt_length=length,
                tokens_per_s=rates.median,
                time_s=seconds.median,
                flops_per_s=_prefill_flops(backend, length) / seconds.median,
                mfu=None,  # filled by apply_roofline
                stats=PrefillStats(tokens_per_s=_stats(rates), time_s=_stats(seconds)),
            )
        )

    decode: list[DecodePoint] = []
    steps = settings.decode_tokens
    for length in sorted(set(settings.context_lengths)):
        if window is not None and length + steps + 1 > window:
            reason = f"context {length} + {steps + 1} new tokens exceeds the model's window of {window}"
            skipped.append(SkippedLength(phase="decode", length=length, reason=reason))
            continue
        ids = random_tokens(vocab, length, f"{settings.seed}:decode:{length}", excluded)
        if sampler is not None:
            sampler.start_window()
        runs = repeat(functools.partial(backend.timing_decode, ids, steps), policy, clock)
        decode.append(_decode_point(backend, ids, runs, weight_bytes, sampler))

    if not prefill and not decode:
        raise EfficiencyError(f"{facts.name}: no requested length fits the model's window of {window}")
    headline: dict[str, float | int | None] = {}
    if prefill:
        headline.update(
            prefill_tokens_per_s=prefill[-1].tokens_per_s, prefill_prompt_length=prefill[-1].prompt_length
        )
    if decode:
        head = decode[0]
        headline.update(
            decode_tokens_per_s=head.decode_tokens_per_s,
            time_to_first_token_s=head.time_to_first_token_s,
            time_per_output_token_s=head.time_per_output_token_s,
            time_per_output_token_p95_s=head.time_per_output_token_p95_s,
            decode_context_length=head.context_length,
        )
    figures = EfficiencyFigures.model_validate(
        {
            "parameters": facts.parameters,
            "bytes_on_disk": facts.bytes_on_disk,
            "bits_per_weight": facts.bytes_on_disk * 8 / facts.parameters
            if facts.bytes_on_disk and facts.parameters
            else None,
            "weight_bytes": weight_bytes,
            "roofline_dtype": dtype,
            **headline,
            "curves": EfficiencyCurves(prefill=prefill, decode=decode),
            "skipped": skipped,
            "settings": EfficiencySettings.model_validate(settings.model_dump(mode="json")),
        }
    )
    figures = apply_roofline(figures, host_peaks)
    return figures.model_copy(update={"measure_time_s": clock() - started})


def _decode_point(
    backend: TimingProbe,
    ids: list[int],
    runs: list[list[float]],
    weight_bytes: int,
    sampler: PeakRssSampler | None,
) -> DecodePoint:
    first = summarize([run[0] for run in runs])
    per_token = summarize([step for run in runs for step in run[1:]] or [run[0] for run in runs])
    rates = summarize([(len(run) - 1) / sum(run[1:]) for run in runs if len(run) > 1] or [1 / first.median])
    state = backend.timing_state_bytes(ids) if isinstance(backend, StateSizeProbe) else None
    return DecodePoint(
        context_length=len(ids),
        time_per_output_token_s=per_token.median,
        time_per_output_token_p95_s=per_token.p95,
        time_to_first_token_s=first.median,
        decode_tokens_per_s=rates.median,
        peak_memory_bytes=sampler.window_peak_bytes if sampler is not None else None,
        state_bytes=state,
        weight_bytes_per_s=weight_bytes / per_token.median,
        mbu=None,  # filled by apply_roofline
        stats=DecodeStats(
            time_per_output_token_s=_stats(per_token),
            time_to_first_token_s=_stats(first),
            decode_tokens_per_s=_stats(rates),
        ),
    )


def apply_roofline(figures: EfficiencyFigures, host_peaks: HostPeaks | None) -> EfficiencyFigures:
    """`figures` with MFU and MBU of every point and of the headline (re)computed from the achieved
    rates and `host_peaks`, which the result records.

    Kept apart from the timing so that a run can re-probe the host (a peak cached while the
    machine was busy is too low and gives ratios above 1) without measuring the model again.
    """
    flops_peak, bandwidth = _peaks(host_peaks, figures.roofline_dtype)
    prefill = [
        point.model_copy(update={"mfu": _ratio(point.flops_per_s, flops_peak)})
        for point in figures.curves.prefill
    ]
    decode = [
        point.model_copy(update={"mbu": _ratio(point.weight_bytes_per_s, bandwidth)})
        for point in figures.curves.decode
    ]
    update: dict[str, object] = {
        "curves": EfficiencyCurves(prefill=prefill, decode=decode),
        "host_peaks": host_peaks,
    }
    if prefill:
        update["mfu"] = prefill[-1].mfu
    if decode:
        update["mbu"] = decode[0].mbu
    return figures.model_copy(update=update)


def utilisation_exceeds_one(figures: EfficiencyFigures) -> bool:
    prefill = [p.mfu for p in figures.curves.prefill]
    decode = [p.mbu for p in figures.curves.decode]
    return any(ratio is not None and ratio > 1 for ratio in [*prefill, *decode])


def _prefill_flops(backend: TimingProbe, length: int) -> float:
    """FLOPs of one prefill: the backend's own count when it offers one (e.g. it skips the output
    head for all but the last position), else length x the per-token cost at mid-prompt."""
    exact = getattr(backend, "timing_prefill_flops", None)
    if callable(exact):
        return float(exact(length))
    return length * backend.flops_per_token(max(1, length // 2))


def _peaks(host_peaks: HostPeaks | None, dtype: str | None) -> tuple[float | None, float | None]:
    if host_peaks is None:
        return None, None
    flops = {
        "float32": host_peaks.matmul_flops_per_s.float32,
        "bfloat16": host_peaks.matmul_flops_per_s.bfloat16,
    }
    return flops.get(dtype or "float32"), host_peaks.memory_bytes_per_s


def _ratio(achieved: float, peak: float | None) -> float | None:
    """achieved / peak, None when no (positive) peak was measured: a ratio to nothing is undefined."""
    return achieved / peak if peak else None


def _stats(summary: Summary) -> TimingStats:
    return TimingStats.model_validate(summary.as_dict())
