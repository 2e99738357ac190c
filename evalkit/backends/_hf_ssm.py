"""A Mamba-1 selective scan that continues from a cached state and bounds memory (any device).

transformers' torch fallback `mamba_selective_scan` (mamba, falcon_mamba, jamba, zamba) has two
limits that matter for long, shared prompts:

* it materialises the discretised A and B·u for the whole sequence ([batch, d_inner, L, N]),
  so memory grows with the prompt length;
* for a multi-token input it always starts from a zero state, ignoring the recurrent state in
  the cache. The mixers only use the cached state for single-token steps, so a chunked prefill,
  or continuing a prefix's state with several tokens, computes something else.

`install_scan_patch(model)` fixes both for the modules of the model's family: the module-level
scan is replaced by `chunked_selective_scan` (time processed in chunks of `SCAN_CHUNK` steps),
and the mixer's `forward` is wrapped so that, when its cache already holds a state and more than
one token arrives, that state is handed to the scan (through a context variable) as the initial
state. The convolution already continues correctly: `update_conv_state` prepends the cached
window when the layer has a previous state. Mamba-2 style families (mamba2, zamba2, bamba,
falcon_h1) pass `initial_states` themselves and are left alone.

`continuation_error(model, ids)` measures the result: max |Δ logit| between one full forward and
the same tokens fed in pieces through a cache.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import itertools
from collections.abc import Callable, Sequence
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
]

# Time steps per chunk: the transient discretised tensors are [batch, d_inner, SCAN_CHUNK, N].
SCAN_CHUNK = 256

# model_type -> (module, mixer class, whether the mixer scans each head separately)
_TARGETS: dict[str, tuple[str, str, bool]] = {
    "mamba": ("transformers.models.mamba.modeling_mamba", "MambaMixer", False),
    "falcon_mamba": ("transformers.models.falcon_mamba.modeling_falcon_mamba", "FalconMambaMixer", False),
    "jamba": ("transformers.models.jamba.modeling_jamba", "JambaMambaMixer", False),
    "zamba": ("transformers.models.zamba.modeling_zamba", "ZambaMambaMixer", True),
}
PATCHED_MODEL_TYPES = frozenset(_TARGETS)

_MARK = "_evalkit_scan_patch"
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
    """The Mamba-1 selective scan, sequential over time in chunks, from the pending initial state.

    Shapes as transformers' fallback: hidden_states, dt, z [batch, d, L]; A [d, N]; B, C
    [batch, N, L]; D [d]. The state is kept in float32 and the same arithmetic order is used, so
    a single-pass result matches the fallback to rounding.
    """
    import torch
    import torch.nn.functional as F

    batch, d_inner, seq_len = hidden_states.shape
    input_dtype = hidden_states.dtype
    if delta_bias is not None:
        dt = dt + delta_bias.to(dt.dtype)[..., None]
    if delta_softplus:
        dt = F.softplus(dt)
    state = torch.zeros(batch, d_inner, A.shape[-1], dtype=torch.float32, device=hidden_states.device)
    pending = _INITIAL_STATES.get()
    if pending:
        initial = pending.pop(0)
        if tuple(initial.shape) != tuple(state.shape):
            raise RuntimeError(
                f"cached recurrent state has shape {tuple(initial.shape)}, "
                f"the scan expects {tuple(state.shape)}"
            )
        state = initial.to(torch.float32).clone()
    outputs = torch.empty(batch, d_inner, seq_len, dtype=input_dtype, device=hidden_states.device)
    for start in range(0, seq_len, SCAN_CHUNK):
        end = min(start + SCAN_CHUNK, seq_len)
        dt_chunk = dt[:, :, start:end, None]
        decay = torch.exp(A[None, :, None, :] * dt_chunk)  # [batch, d, T, N]
        inputs = dt_chunk * B[:, None, :, start:end].transpose(-1, -2).float()
        inputs = inputs * hidden_states[:, :, start:end, None].float()
        states = torch.empty(batch, d_inner, end - start, A.shape[-1], dtype=input_dtype, device=state.device)
        for step in range(end - start):
            state = decay[:, :, step] * state + inputs[:, :, step]
            states[:, :, step] = state.to(input_dtype)
        readout = C[:, :, start:end].transpose(1, 2)  # [batch, T, N]
        outputs[:, :, start:end] = torch.einsum("bdtn,btn->bdt", states, readout.to(input_dtype))
    result: torch.Tensor = outputs
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
