"""The typed efficiency figures of a run record (`RunRecord.efficiency`).

Every figure is in SI units: seconds (`_s`), bytes (`_bytes`), tokens per second, FLOP/s, bytes/s.
A figure that was not measured, or that is undefined (no file on disk for bits per weight, no host
peak for a utilisation ratio, a backend without a state probe) is None, never NaN or infinity:
non-finite numbers are refused here, because JSON cannot carry them and a reader could not trust them.

Which top-level figures are filled depends on how the model was measured: `measure_backend` alone
fills the model, curve and roofline figures; the subprocess adds load time, process memory and
device facts; an in-process measurement adds `wall_time_s` and leaves `load_time_s` None. A prefill
headline (and `mfu`) exists only when some prompt length fitted the window, a decode headline (and
`mbu`) only when some context length did.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from evalkit.errors import UnknownNameError

_STRICT = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TimingStats(BaseModel):
    """One figure measured `n` times (see `evalkit.efficiency.summarize`); units are the figure's."""

    model_config = _STRICT

    median: float
    min: float
    max: float
    p95: float
    cv: float = Field(description="coefficient of variation: sample stdev / mean (0 for n == 1)")
    n: int = Field(ge=1, description="repetitions (decode steps for per-token figures) behind the figure")


class PrefillStats(BaseModel):
    model_config = _STRICT

    tokens_per_s: TimingStats
    time_s: TimingStats


class PrefillPoint(BaseModel):
    """One prompt length of the prefill curve: a single forward pass over the whole prompt."""

    model_config = _STRICT

    prompt_length: int = Field(description="tokens in the prompt")
    tokens_per_s: float = Field(description="median prompt tokens processed per second")
    time_s: float = Field(description="median seconds for the forward pass")
    flops_per_s: float = Field(description="achieved FLOP/s: the pass's FLOPs / time_s")
    mfu: float | None = Field(description="flops_per_s / the host's matmul peak for the dtype; None: no peak")
    stats: PrefillStats


class DecodeStats(BaseModel):
    model_config = _STRICT

    time_per_output_token_s: TimingStats
    time_to_first_token_s: TimingStats
    decode_tokens_per_s: TimingStats


class DecodePoint(BaseModel):
    """One context length of the decode curve: greedy steps after a prompt of that length."""

    model_config = _STRICT

    context_length: int = Field(description="tokens of context before the first generated token")
    time_per_output_token_s: float = Field(description="median seconds per generated token after the first")
    time_per_output_token_p95_s: float = Field(description="95th percentile of the same")
    time_to_first_token_s: float = Field(description="median seconds from the prompt to the first token")
    decode_tokens_per_s: float = Field(description="median generated tokens per second after the first")
    peak_memory_bytes: int | None = Field(description="peak resident bytes while decoding; None: not sampled")
    state_bytes: int | None = Field(
        description="KV cache / recurrent state bytes held after the context; None: the backend cannot say"
    )
    weight_bytes_per_s: float = Field(description="weight bytes streamed per second: weight_bytes / TPOT")
    mbu: float | None = Field(description="weight_bytes_per_s / the host's memory bandwidth; None: no peak")
    stats: DecodeStats


class EfficiencyCurves(BaseModel):
    model_config = _STRICT

    prefill: list[PrefillPoint] = Field(default_factory=list, description="ascending prompt lengths")
    decode: list[DecodePoint] = Field(default_factory=list, description="ascending context lengths")


class SkippedLength(BaseModel):
    """A requested length that was not measured, and why (it did not fit the model's window)."""

    model_config = _STRICT

    phase: Literal["prefill", "decode"]
    length: int
    reason: str


class MatmulPeaks(BaseModel):
    """The best square-matmul FLOP/s the host achieved, per dtype (None: not probed)."""

    model_config = _STRICT

    float32: float | None = None
    bfloat16: float | None = None


class HostPeakKey(BaseModel):
    """The host facts a measured peak depends on (the cache key of `host_peaks.json`)."""

    model_config = _STRICT

    probe_version: int
    cpu: str
    cpus: int = Field(description="CPUs this process may run on")
    machine: str
    accelerator: str | None
    torch: str
    threads: int = Field(description="torch intra-op threads")
    device: str | None = Field(
        default=None,
        description="the accelerator probed, e.g. 'cuda: NVIDIA H200 (sm_90)'; None: the CPU",
    )


class HostPeaks(BaseModel):
    """The measured peaks of the device the model ran on, the denominators of `mfu` and `mbu`:
    the host's CPU, or its GPU (a matmul and a copy on the device, in device memory)."""

    model_config = _STRICT

    device: Literal["cpu", "cuda", "mps"] = Field(
        default="cpu", description="the device kind the peaks were measured on (its name: key.device)"
    )
    matmul_flops_per_s: MatmulPeaks
    memory_bytes_per_s: float | None = Field(description="best large-copy rate, bytes read + written per s")
    matmul_size: int | None = None  # the square matrices' side
    copy_bytes: int | None = None  # the size of the copied buffer
    probe_seconds: float | None = None  # how long the probe took
    key: HostPeakKey | None = None
    cached: bool | None = None  # True: read from the cache; False: probed for this measurement


class EfficiencySettings(BaseModel):
    """The efficiency spec the figures were measured with (mirrors `evalkit.specs.task.EfficiencySpec`)."""

    model_config = _STRICT

    prompt_lengths: list[int]
    context_lengths: list[int]
    decode_tokens: int
    warmup: int
    min_repetitions: int
    min_seconds: float
    seed: int
    isolate: bool
    timeout_s: float


class EfficiencyFigures(BaseModel):
    """What an efficiency task measured about one model on one host."""

    model_config = _STRICT

    load_time_s: float | None = Field(default=None, description="seconds to load the model (isolated only)")
    peak_memory_bytes: int | None = Field(default=None, description="peak resident bytes of the process")
    baseline_memory_bytes: int | None = Field(default=None, description="resident bytes before loading")
    load_peak_memory_bytes: int | None = Field(default=None, description="peak resident bytes after loading")
    peak_device_memory_bytes: int | None = Field(
        default=None, description="peak accelerator bytes allocated (load and measurement); None on a CPU"
    )
    device: str | None = Field(default=None, description="the accelerator the model ran on; None on a CPU")
    rss_samples: int | None = Field(default=None, description="resident-memory samples the peak is over")
    isolated: bool | None = Field(default=None, description="measured in a fresh subprocess")
    wall_time_s: float | None = Field(default=None, description="seconds of an in-process measurement")
    parameters: int | None = None
    bytes_on_disk: int | None = None
    bits_per_weight: float | None = Field(default=None, description="bytes_on_disk × 8 / parameters")
    weight_bytes: int | None = Field(default=None, description="bytes of weights read per decode step")
    roofline_dtype: Literal["float32", "bfloat16"] | None = Field(
        default=None, description="the matmul peak mfu divides by"
    )
    prefill_tokens_per_s: float | None = Field(default=None, description="at the longest measured prompt")
    prefill_prompt_length: int | None = None
    decode_tokens_per_s: float | None = Field(default=None, description="at the shortest measured context")
    time_to_first_token_s: float | None = None
    time_per_output_token_s: float | None = None
    time_per_output_token_p95_s: float | None = None
    decode_context_length: int | None = None
    curves: EfficiencyCurves = Field(default_factory=EfficiencyCurves)
    skipped: list[SkippedLength] = Field(default_factory=list)
    mfu: float | None = Field(default=None, description="model FLOP utilisation at the prefill headline")
    mbu: float | None = Field(default=None, description="memory bandwidth utilisation at the decode headline")
    host_peaks: HostPeaks | None = None
    settings: EfficiencySettings | None = None
    measure_time_s: float | None = Field(default=None, description="seconds the curves took to measure")

    @classmethod
    def figure_names(cls) -> tuple[str, ...]:
        """The names `figure()` accepts: every top-level number (counts, sizes, times, rates, ratios)."""
        return _FIGURE_NAMES

    def figure(self, name: str) -> float | None:
        """The top-level figure `name` as a finite, positive float; None when it was not measured,
        is undefined, or is zero (a zero time or size is no figure a view can rank or divide by).

        Raises `UnknownNameError` (with "did you mean") for a name that is not a numeric figure,
        so a typo in a gate policy or a plot request fails loudly instead of reading as "absent".
        """
        if name not in _FIGURE_NAMES:
            raise UnknownNameError("efficiency figure", name, _FIGURE_NAMES)
        value = getattr(self, name)
        if value is None or isinstance(value, bool):
            return None
        number = float(value)
        return number if math.isfinite(number) and number > 0 else None


def _numeric_fields() -> tuple[str, ...]:
    numeric = {int | None, float | None}
    return tuple(
        name for name, field in EfficiencyFigures.model_fields.items() if field.annotation in numeric
    )


_FIGURE_NAMES = _numeric_fields()
