"""A Mamba-1 selective scan that continues from a cached state and bounds memory (any device).

transformers' torch fallback `mamba_selective_scan` (mamba, falcon_mamba, jamba, zamba) has three
limits:

* it materialises the discretised A and B·u for the whole sequence ([batch, d_inner, L, N]),
  so memory grows with the prompt length;
* for a multi-token input it always starts from a zero state, ignoring the recurrent state in
  the cache. The mixers only use the cached state for single-token steps, so a chunked prefill,
  or continuing a prefix's state with several tokens, computes something else;
* its step loop (a few small autograd nodes per token, each split over all intra-op threads)
  makes a training step take minutes on a shared CPU.

`install_scan_patch(model)` fixes these for the modules of the model's family: the module-level
scan is replaced by `chunked_selective_scan` (time processed in chunks of `SCAN_CHUNK` steps:
discretisation, read-out and gradients are whole-chunk tensor ops, only h_t = decay_t·h_(t-1) +
drive_t is a fused op per step; training uses an autograd function whose backward reads each
chunk's decays and states kept by the forward, or recomputes them from the chunk's first state
when they would not fit in `SAVED_SCAN_BYTES`, and runs the adjoint recurrence in reverse), and the
mixer's `forward` is wrapped so that, when its cache already holds a state and more than
one token arrives, that state is handed to the scan (through a context variable) as the initial
state. The convolution already continues correctly: `update_conv_state` prepends the cached
window when the layer has a previous state. Mamba-2 style families (mamba2, zamba2, bamba,
falcon_h1) pass `initial_states` themselves and are left alone.

`continuation_error(model, ids)` measures the result: max |Δ logit| between one full forward and
the same tokens fed in pieces through a cache.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import itertools
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = [
    "PATCHED_MODEL_TYPES",
    "SCAN_CHUNK",
    "chunked_selective_scan",
    "continuation_error",
    "install_scan_patch",
    "needs_scan_patch",
    "sequential_selective_scan",
]

# Time steps per chunk: the transient discretised tensors are [SCAN_CHUNK, batch, d_inner, N].
# 32 keeps them within a few MB, so they stay in cache instead of going through memory (and
# through mmap/page faults: glibc maps blocks over 32 MB afresh on every allocation). Measured
# on a quiet host, 2 threads: a training step (batch 16, d_inner 256, N 16, 4 layers) takes
# 0.44 s at 32, 0.48 at 16, 0.51 at 64 and 1.04 at 128; a mamba-130m-shaped prefill of 2048
# tokens runs at 2000 tokens/s at 32 and 1830 at 128. (An earlier choice of 128 was timed on an
# overloaded host.)
SCAN_CHUNK = 32
# Training keeps each chunk's decays and states for the backward pass when both together
# ([L, batch, d_inner, N] float32 each) fit in this many bytes per scan call; past it only each
# chunk's first state is kept and the chunk is recomputed (memory: inputs plus one chunk). Keeping
# them saves the backward's exp, drive and forward recurrence: about 10% of a training step.
SAVED_SCAN_BYTES = 256 * 2**20

# model_type -> (module, mixer class, whether the mixer scans each head separately)
_TARGETS: dict[str, tuple[str, str, bool]] = {
    "mamba": ("transformers.models.mamba.modeling_mamba", "MambaMixer", False),
    "falcon_mamba": ("transformers.models.falcon_mamba.modeling_falcon_mamba", "FalconMambaMixer", False),
    "jamba": ("transformers.models.jamba.modeling_jamba", "JambaMambaMixer", False),
    "zamba": ("transformers.models.zamba.modeling_zamba", "ZambaMambaMixer", True),
}
PATCHED_MODEL_TYPES = frozenset(_TARGETS)

_MARK = "_evalkit_scan_patch"
# Where a patched module keeps transformers' own scan (the reference the tests compare against).
ORIGINAL_SCAN = "_evalkit_original_scan"
# Initial states for the scans of the mixer call in progress, consumed in call order.
_INITIAL_STATES: contextvars.ContextVar[list[torch.Tensor] | None] = contextvars.ContextVar(
    "evalkit_initial_states", default=None
)


def needs_scan_patch(config: Any) -> bool:
    """Whether the model's type (top-level or text sub-config) uses the Mamba-1 torch scan."""
    types = {getattr(config, "model_type", None)}
    getter = getattr(config, "get_text_config", None)
    if callable(getter):
        types.add(getattr(getter(), "model_type", None))
    return bool(types & PATCHED_MODEL_TYPES)


def install_scan_patch(model: Any) -> list[str]:
    """Patch the scan of the model's family (idempotent); returns the model types patched now or before."""
    config = model.config
    types = {getattr(config, "model_type", None)}
    getter = getattr(config, "get_text_config", None)
    if callable(getter):
        types.add(getattr(getter(), "model_type", None))
    patched = []
    for model_type in sorted(t for t in types if t in _TARGETS):
        module_name, mixer_name, per_head = _TARGETS[model_type]
        module = importlib.import_module(module_name)
        if not getattr(module, _MARK, False):
            mixer = getattr(module, mixer_name)
            mixer.forward = _with_initial_state(mixer.forward, per_head=per_head)
            setattr(module, ORIGINAL_SCAN, module.mamba_selective_scan)
            module.mamba_selective_scan = chunked_selective_scan  # type: ignore[attr-defined]
            setattr(module, _MARK, True)
        patched.append(model_type)
    return patched


def _with_initial_state(forward: Callable[..., Any], *, per_head: bool) -> Callable[..., Any]:
    """Wrap a mixer's forward: a multi-token call on a cache with a state starts the scan from it."""

    @functools.wraps(forward)
    def wrapped(self: Any, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        cache = kwargs.get("cache", kwargs.get("cache_params", args[0] if args else None))
        state = None
        if cache is not None and hidden_states.shape[1] > 1:
            state = cache.get_recurrent_state(self.layer_idx)
        if state is None:
            return forward(self, hidden_states, *args, **kwargs)
        # Zamba keeps [batch, heads, head_dim, N] and calls the scan once per head, in order.
        feed = list(state.unbind(1)) if per_head else [state]
        token = _INITIAL_STATES.set(feed)
        try:
            return forward(self, hidden_states, *args, **kwargs)
        finally:
            _INITIAL_STATES.reset(token)

    return wrapped


def chunked_selective_scan(
    hidden_states: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    **_unused: Any,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The Mamba-1 selective scan in chunks of `SCAN_CHUNK` steps, from the pending initial state.

    Shapes as transformers' fallback: hidden_states, dt, z [batch, d, L]; A [d, N]; B, C
    [batch, N, L]; D [d]. The state is float32. When a gradient is needed the scan runs as one
    autograd function that keeps only the chunk-boundary states and recomputes each chunk in the
    backward pass, so training memory is that of the inputs plus one chunk.
    """
    import torch
    import torch.nn.functional as F

    batch, d_inner, _ = hidden_states.shape
    input_dtype = hidden_states.dtype
    if delta_bias is not None:
        dt = dt + delta_bias.to(dt.dtype)[..., None]
    if delta_softplus:
        dt = F.softplus(dt)
    initial = _initial_state(batch, d_inner, A.shape[-1], hidden_states.device)
    # Time-first copies ([L, batch, channels]): each step of the recurrence then reads one dense
    # block, and a chunk is a contiguous slice.
    delta = _time_first(dt)
    inputs = (delta, delta * _time_first(hidden_states), A.float(), _time_first(B), _time_first(C), initial)
    if torch.is_grad_enabled() and any(t.requires_grad for t in inputs):
        keep_all = 2 * delta.numel() * A.shape[-1] * 4 <= SAVED_SCAN_BYTES
        outputs, state = _scan_function().apply(*inputs, SCAN_CHUNK, keep_all)
    else:
        outputs, state, _ = _scan_forward(*inputs, chunk=SCAN_CHUNK, keep="none")
    outputs = outputs.permute(1, 2, 0)
    result: torch.Tensor = outputs.to(input_dtype)
    if D is not None:
        result = result + hidden_states * D[None, :, None]
    if z is not None:
        result = result * F.silu(z)
    if return_last_state:
        return result, state
    return result


def _initial_state(batch: int, d_inner: int, state_size: int, device: torch.device) -> torch.Tensor:
    """The pending initial state of this scan (see `_with_initial_state`), or zeros; float32."""
    import torch

    shape = (batch, d_inner, state_size)
    pending = _INITIAL_STATES.get()
    if not pending:
        return torch.zeros(shape, dtype=torch.float32, device=device)
    initial = pending.pop(0)
    if tuple(initial.shape) != shape:
        raise RuntimeError(
            f"cached recurrent state has shape {tuple(initial.shape)}, the scan expects {shape}"
        )
    return initial.to(torch.float32)


def _time_first(x: torch.Tensor) -> torch.Tensor:
    """A [batch, channels, L] tensor as a contiguous float32 [L, batch, channels]."""
    return x.permute(2, 0, 1).float().contiguous()


def _discretise(
    delta: torch.Tensor, scaled: torch.Tensor, A: torch.Tensor, B: torch.Tensor, start: int, end: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Steps start..end: decay exp(A·dt) and drive dt·u·B, [T, batch, d, N] (inputs time-first)."""
    decay = (delta[start:end, :, :, None] * A).exp_()
    drive = scaled[start:end, :, :, None] * B[start:end, :, None, :]
    return decay, drive


def _recur_chunk(
    delta: torch.Tensor,
    scaled: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    start: int,
    end: int,
    state: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(decays, states) of steps start..end from the chunk's first state."""
    decay, drive = _discretise(delta, scaled, A, B, start, end)
    return decay, _recur(decay, drive, state)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run the per-step loops on one intra-op thread when the CPU is oversubscribed.

    Each step is a small op (batch·d·N elements); split over threads, every step ends in a
    barrier, and when other jobs hold the cores a descheduled thread stalls it: measured here
    (2 cores, load ~10), 255 steps of 65k elements took 5.3 s on 2 threads and 0.01-0.03 s on one.
    On a quiet CPU the threads pay off (32 steps of 65k elements: 0.49 ms on 2 threads, 1.23 ms on
    one), so the loops keep torch's threads unless the 1-minute load average exceeds the cores.
    """
    import torch

    threads = torch.get_num_threads()
    if threads == 1 or not _oversubscribed():
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _oversubscribed() -> bool:
    """Whether the 1-minute load average exceeds the CPU count (False where there is none)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        return False
    return load > (os.cpu_count() or 1)


def _recur(decay: torch.Tensor, drive: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """All states of a chunk, h_t = decay_t·h_(t-1) + drive_t (one fused op per step), in `drive`'s place."""
    import torch

    with _one_thread():
        torch.addcmul(drive[0], decay[0], state, out=drive[0])
        for step in range(1, drive.shape[0]):
            torch.addcmul(drive[step], decay[step], drive[step - 1], out=drive[step])
    return drive


def _scan_forward(
    delta: torch.Tensor,
    scaled: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    state: torch.Tensor,
    *,
    chunk: int,
    keep: str,
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """y [L, batch, d] (before D and z), the last state, and what `keep` asks for the backward pass:
    "none"; "starts", each chunk's first state; "all", each chunk's first state, decays and states.

    delta, scaled (dt·u) [L, batch, d]; A [d, N]; B, C [L, batch, N]; state [batch, d, N].
    """
    import torch

    outputs = delta.new_empty(delta.shape)
    kept = []
    for start in range(0, delta.shape[0], chunk):
        end = min(start + chunk, delta.shape[0])
        if keep != "none":
            kept.append(state)
        decay, states = _recur_chunk(delta, scaled, A, B, start, end, state)
        if keep == "all":
            kept += [decay, states]
        torch.matmul(states, C[start:end, :, :, None], out=outputs[start:end, :, :, None])
        state = states[-1] if keep == "all" else states[-1].clone()
    return outputs, state, kept


@functools.cache
def _scan_function() -> Any:
    """The autograd function of the scan (built on first use, so importing this module needs no torch)."""
    import torch

    class SelectiveScan(torch.autograd.Function):
        """Forward keeps the chunk-boundary states; backward recomputes a chunk's states, runs the
        adjoint recurrence g_t = C_t·dy_t + decay_(t+1)·g_(t+1) backwards through it, and reads
        every gradient off the states, adjoints and decays of that chunk. Inputs as `_scan_forward`;
        with `keep_all` the forward's decays and states are kept instead of recomputed."""

        @staticmethod
        def forward(
            ctx: Any,
            delta: torch.Tensor,
            scaled: torch.Tensor,
            A: torch.Tensor,
            B: torch.Tensor,
            C: torch.Tensor,
            initial: torch.Tensor,
            chunk: int,
            keep_all: bool,
        ) -> tuple[torch.Tensor, torch.Tensor]:
            outputs, last, kept = _scan_forward(
                delta, scaled, A, B, C, initial, chunk=chunk, keep="all" if keep_all else "starts"
            )
            ctx.chunk, ctx.keep_all = chunk, keep_all
            ctx.save_for_backward(delta, scaled, A, B, C, *kept)
            return outputs, last.clone()

        @staticmethod
        def backward(
            ctx: Any, grad_outputs: torch.Tensor | None, grad_last: torch.Tensor | None
        ) -> tuple[torch.Tensor | None, ...]:
            delta, scaled, A, B, C, *kept = ctx.saved_tensors
            chunk: int = ctx.chunk
            per_chunk = 3 if ctx.keep_all else 1
            starts = kept[::per_chunk]
            # Every chunk writes its own slice of these; only grad_A accumulates.
            grad_delta, grad_scaled, grad_B, grad_C = (torch.empty_like(t) for t in (delta, scaled, B, C))
            grad_A = torch.zeros_like(A)
            grad_y = torch.zeros_like(delta) if grad_outputs is None else grad_outputs.float()
            shape = (delta.shape[1], delta.shape[2], A.shape[1])
            carry = torch.zeros(shape, device=delta.device) if grad_last is None else grad_last.float()
            for index in reversed(range(len(starts))):
                start, end = index * chunk, min(index * chunk + chunk, delta.shape[0])
                if ctx.keep_all:
                    decay, states = kept[per_chunk * index + 1 : per_chunk * index + 3]
                else:
                    decay, states = _recur_chunk(delta, scaled, A, B, start, end, starts[index])
                grad_y_chunk = grad_y[start:end, :, None, :]  # [T, b, 1, d]
                grad_C[start:end] = (grad_y_chunk @ states).squeeze(-2)
                adjoint = grad_y_chunk.transpose(-1, -2) * C[start:end, :, None, :]
                adjoint[-1] += carry
                with _one_thread():
                    for step in range(end - start - 2, -1, -1):
                        adjoint[step].addcmul_(decay[step + 1], adjoint[step + 1])
                carry = decay[0] * adjoint[0]
                grad_scaled[start:end] = (adjoint @ B[start:end, :, :, None]).squeeze(-1)
                grad_B[start:end] = (scaled[start:end, :, None, :] @ adjoint).squeeze(-2)
                # d loss / d (A·dt_t) = g_t·decay_t·h_(t-1), built in the adjoint's place (decay
                # and states may be the forward's saved tensors: they stay as they are).
                grad_log_decay = adjoint.mul_(decay)
                grad_log_decay[1:] *= states[:-1]
                grad_log_decay[0] *= starts[index]
                # sum_n G·A as a batch of [1, N] @ [N, 1] products, then G·dt in G's place.
                out = grad_delta[start:end, :, :, None, None]
                torch.matmul(grad_log_decay[:, :, :, None, :], A[:, :, None], out=out)
                grad_A += grad_log_decay.mul_(delta[start:end, :, :, None]).sum((0, 1))
            return grad_delta, grad_scaled, grad_A, grad_B, grad_C, carry, None, None

    return SelectiveScan


def sequential_selective_scan(
    hidden_states: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    **_unused: Any,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The reference: one step at a time with autograd through every step, from the pending state.

    Same arithmetic order as transformers' fallback, so a single pass matches it to rounding; slow
    (a Python step per token and a graph node per step), kept to check `chunked_selective_scan`.
    """
    import torch
    import torch.nn.functional as F

    batch, d_inner, seq_len = hidden_states.shape
    if delta_bias is not None:
        dt = dt + delta_bias.to(dt.dtype)[..., None]
    if delta_softplus:
        dt = F.softplus(dt)
    state = _initial_state(batch, d_inner, A.shape[-1], hidden_states.device)
    decay = torch.exp(A[None, :, None, :] * dt[..., None])
    drive = dt[..., None] * B.transpose(1, 2)[:, None].float() * hidden_states[..., None].float()
    outputs = []
    for step in range(seq_len):
        state = decay[:, :, step] * state + drive[:, :, step]
        outputs.append(torch.einsum("bdn,bn->bd", state, C[:, :, step].float()))
    result: torch.Tensor = torch.stack(outputs, dim=-1).to(hidden_states.dtype)
    if D is not None:
        result = result + hidden_states * D[None, :, None]
    if z is not None:
        result = result * F.silu(z)
    if return_last_state:
        return result, state
    return result


def continuation_error(model: Any, token_ids: Sequence[int], pieces: int = 3) -> float:
    """max |Δ logit| between one forward over `token_ids` and the same ids fed in `pieces` cached chunks."""
    import torch

    ids = torch.tensor([list(token_ids)], device=model.device)
    bounds = [round(i * ids.shape[1] / pieces) for i in range(pieces + 1)]
    with torch.inference_mode():
        full = model(input_ids=ids).logits.float()
        cache: Any = None
        parts = []
        for start, end in itertools.pairwise(bounds):
            if end <= start:
                continue
            output = model(input_ids=ids[:, start:end], cache=cache, use_cache=True)
            cache = output.cache
            parts.append(output.logits.float())
    return float((torch.cat(parts, dim=1) - full).abs().max())
