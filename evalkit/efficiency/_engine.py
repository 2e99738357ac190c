"""The measurement itself: prefill and decode curves of a loaded `TimingProbe` backend.

Inputs are random token ids of exact lengths from a generator seeded per (phase, length), so
two models (or two runs) see the same lengths and no tokenizer quirk changes a prompt's size.
Figures at every length go into `curves`; the headline flat keys are taken at the longest
measured prompt (prefill throughput at steady state) and the shortest measured context (the
decode speed a chat user sees). Roofline ratios divide by the host's measured peaks.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from evalkit.backends.base import ModelFacts
from evalkit.backends.capabilities import TimingProbe
from evalkit.efficiency._measure import Clock, RepetitionPolicy, repeat, summarize
from evalkit.efficiency._memory import PeakRssSampler
from evalkit.errors import EvalkitError
from evalkit.specs.task import EfficiencySpec


class EfficiencyError(EvalkitError):
    """The model cannot be measured as asked (no timing support, nothing fits its window, child crash)."""


@runtime_checkable
class StateSizeProbe(Protocol):
    """Optional: bytes of KV cache / recurrent state held after `token_ids` (deterministic).

    Wall times are noisy; the cache size is the deterministic witness of how a model's decode
    cost scales with context (linear for attention, constant for an SSM's state).
    """

    def timing_state_bytes(self, token_ids: Sequence[int]) -> int: ...


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
    host_peaks: dict[str, Any] | None,
    sampler: PeakRssSampler | None = None,
    clock: Clock = time.perf_counter,
) -> dict[str, Any]:
    """Every figure of the efficiency record except load time and the process-wide memory peak."""
    if not isinstance(backend, TimingProbe):
        raise EfficiencyError(
            f"{facts.name}: the {facts.backend} backend cannot time raw forward passes (no TimingProbe)"
        )
    policy = RepetitionPolicy(settings.warmup, settings.min_repetitions, settings.min_seconds)
    window = facts.context_window
    excluded = frozenset(int(i) for i in getattr(backend, "timing_special_ids", ()) or ())
    vocab = backend.vocab_size
    dtype = "bfloat16" if facts.dtype == "bfloat16" else "float32"
    weight_bytes = backend.weight_bytes()
    skipped: list[dict[str, Any]] = []
    started = clock()

    prefill: list[dict[str, Any]] = []
    for length in sorted(set(settings.prompt_lengths)):
        if window is not None and length > window:
            skipped.append(
                _skip("prefill", length, f"prompt {length} exceeds the model's window of {window}")
            )
            continue
        ids = random_tokens(vocab, length, f"{settings.seed}:prefill:{length}", excluded)
        times = repeat(functools.partial(backend.timing_prefill, ids), policy, clock)
        rates = summarize([length / t for t in times])
        seconds = summarize(times)
        achieved = _prefill_flops(backend, length) / seconds.median
        prefill.append(
            {
                "prompt_length": length,
                "tokens_per_s": rates.median,
                "time_s": seconds.median,
                "flops_per_s": achieved,
                "mfu": None,  # filled by apply_roofline
                "stats": {"tokens_per_s": rates.as_dict(), "time_s": seconds.as_dict()},
            }
        )

    decode: list[dict[str, Any]] = []
    steps = settings.decode_tokens
    for length in sorted(set(settings.context_lengths)):
        if window is not None and length + steps + 1 > window:
            reason = f"context {length} + {steps + 1} new tokens exceeds the model's window of {window}"
            skipped.append(_skip("decode", length, reason))
            continue
        ids = random_tokens(vocab, length, f"{settings.seed}:decode:{length}", excluded)
        if sampler is not None:
            sampler.start_window()
        runs = repeat(functools.partial(backend.timing_decode, ids, steps), policy, clock)
        decode.append(_decode_point(backend, ids, runs, weight_bytes, sampler))

    if not prefill and not decode:
        raise EfficiencyError(f"{facts.name}: no requested length fits the model's window of {window}")
    figures: dict[str, Any] = {
        "parameters": facts.parameters,
        "bytes_on_disk": facts.bytes_on_disk,
        "bits_per_weight": facts.bytes_on_disk * 8 / facts.parameters
        if facts.bytes_on_disk and facts.parameters
        else None,
        "weight_bytes": weight_bytes,
        "roofline_dtype": dtype,
    }
    if prefill:
        head = prefill[-1]
        figures.update(prefill_tokens_per_s=head["tokens_per_s"], prefill_prompt_length=head["prompt_length"])
    if decode:
        head = decode[0]
        figures.update(
            decode_tokens_per_s=head["decode_tokens_per_s"],
            time_to_first_token_s=head["time_to_first_token_s"],
            time_per_output_token_s=head["time_per_output_token_s"],
            time_per_output_token_p95_s=head["time_per_output_token_p95_s"],
            decode_context_length=head["context_length"],
        )
    figures["curves"] = {"prefill": prefill, "decode": decode}
    figures["skipped"] = skipped
    apply_roofline(figures, host_peaks)
    figures["settings"] = settings.model_dump(mode="json")
    figures["measure_time_s"] = clock() - started
    return figures


def _decode_point(
    backend: TimingProbe,
    ids: list[int],
    runs: list[list[float]],
    weight_bytes: int,
    sampler: PeakRssSampler | None,
) -> dict[str, Any]:
    first = summarize([run[0] for run in runs])
    per_token = summarize([step for run in runs for step in run[1:]] or [run[0] for run in runs])
    rates = summarize([(len(run) - 1) / sum(run[1:]) for run in runs if len(run) > 1] or [1 / first.median])
    state = backend.timing_state_bytes(ids) if isinstance(backend, StateSizeProbe) else None
    return {
        "context_length": len(ids),
        "time_per_output_token_s": per_token.median,
        "time_per_output_token_p95_s": per_token.p95,
        "time_to_first_token_s": first.median,
        "decode_tokens_per_s": rates.median,
        "peak_memory_bytes": sampler.window_peak_bytes if sampler is not None else None,
        "state_bytes": state,
        "weight_bytes_per_s": weight_bytes / per_token.median,
        "mbu": None,  # filled by apply_roofline
        "stats": {
            "time_per_output_token_s": per_token.as_dict(),
            "time_to_first_token_s": first.as_dict(),
            "decode_tokens_per_s": rates.as_dict(),
        },
    }


def apply_roofline(figures: dict[str, Any], host_peaks: dict[str, Any] | None) -> None:
    """(Re)compute MFU and MBU of every point and of the headline from achieved rates and peaks.

    Kept apart from the timing so that a run can re-probe the host (a peak cached while the
    machine was busy is too low and gives ratios above 1) without measuring the model again.
    """
    flops_peak, bandwidth = _peaks(host_peaks, figures["roofline_dtype"])
    curves = figures["curves"]
    for point in curves["prefill"]:
        point["mfu"] = point["flops_per_s"] / flops_peak if flops_peak else None
    for point in curves["decode"]:
        point["mbu"] = point["weight_bytes_per_s"] / bandwidth if bandwidth else None
    if curves["prefill"]:
        figures["mfu"] = curves["prefill"][-1]["mfu"]
    if curves["decode"]:
        figures["mbu"] = curves["decode"][0]["mbu"]
    figures["host_peaks"] = host_peaks


def utilisation_exceeds_one(figures: dict[str, Any]) -> bool:
    points = [*figures["curves"]["prefill"], *figures["curves"]["decode"]]
    return any((p.get("mfu") or 0) > 1 or (p.get("mbu") or 0) > 1 for p in points)


def _prefill_flops(backend: TimingProbe, length: int) -> float:
    """FLOPs of one prefill: the backend's own count when it offers one (e.g. it skips the output
    head for all but the last position), else length x the per-token cost at mid-prompt."""
    exact = getattr(backend, "timing_prefill_flops", None)
    if callable(exact):
        return float(exact(length))
    return length * backend.flops_per_token(max(1, length // 2))


def _peaks(host_peaks: dict[str, Any] | None, dtype: str) -> tuple[float | None, float | None]:
    if not host_peaks:
        return None, None
    flops = (host_peaks.get("matmul_flops_per_s") or {}).get(dtype)
    return flops, host_peaks.get("memory_bytes_per_s")


def _skip(phase: str, length: int, reason: str) -> dict[str, Any]:
    return {"phase": phase, "length": length, "reason": reason}
