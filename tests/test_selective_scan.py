"""evalkit's chunked selective scan against transformers' own sequential scan: values and gradients.

The chunk size is set small (8) so that short random tensors cross several chunk boundaries; the
lengths cover one step, a chunk less one, a chunk, a chunk and one, and three and a half chunks.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from evalkit.backends import _hf_ssm  # noqa: E402

CHUNK = 8
LENGTHS = [1, CHUNK - 1, CHUNK, CHUNK + 1, CHUNK * 7 // 2]
BATCH, D_INNER, STATE = 2, 6, 4
MAMBA_MODULE = "transformers.models.mamba.modeling_mamba"


@pytest.fixture(autouse=True, params=["keep-all", "recompute"])
def small_chunks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs with the backward reading the forward's saved chunks and recomputing them."""
    monkeypatch.setattr(_hf_ssm, "SCAN_CHUNK", CHUNK)
    monkeypatch.setattr(_hf_ssm, "SAVED_SCAN_BYTES", 2**30 if request.param == "keep-all" else 0)


def transformers_scan() -> Callable[..., Any]:
    """transformers' own `mamba_selective_scan`, also after evalkit's patch replaced it."""
    module = importlib.import_module(MAMBA_MODULE)
    return getattr(module, _hf_ssm.ORIGINAL_SCAN, module.mamba_selective_scan)  # type: ignore[no-any-return]


def scan_inputs(length: int, seed: int = 0) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape: int, scale: float = 1.0) -> Any:
        return (torch.randn(*shape, generator=generator) * scale).requires_grad_()

    return {
        "hidden_states": rand(BATCH, D_INNER, length),
        "dt": rand(BATCH, D_INNER, length, scale=0.5),
        # A = -exp(A_log) as the mixers build it: every decay exp(A·dt) is below one.
        "A": (-torch.rand(D_INNER, STATE, generator=generator) * 3 - 0.1).requires_grad_(),
        "B": rand(BATCH, STATE, length),
        "C": rand(BATCH, STATE, length),
        "D": rand(D_INNER),
        "z": rand(BATCH, D_INNER, length),
        "delta_bias": rand(D_INNER, scale=0.5),
    }


# (D, z, delta_bias, softplus): transformers' mixers pass all four; the others check each term alone.
OPTIONS = [
    (True, True, True, True),
    (False, False, False, True),
    (True, False, False, False),
    (False, True, True, True),
]


def call(scan: Callable[..., Any], inputs: dict[str, Any], options: tuple[bool, bool, bool, bool]) -> Any:
    use_d, use_z, use_bias, softplus = options
    dt = inputs["dt"] if softplus else inputs["dt"].abs()  # without softplus the step must stay positive
    return scan(
        inputs["hidden_states"],
        dt,
        inputs["A"],
        inputs["B"],
        inputs["C"],
        D=inputs["D"] if use_d else None,
        z=inputs["z"] if use_z else None,
        delta_bias=inputs["delta_bias"] if use_bias else None,
        delta_softplus=softplus,
        return_last_state=True,
    )


def loss_of(output: Any, state: Any) -> Any:
    """A loss that weighs every output position and the last state differently."""
    weights = torch.linspace(-1.0, 2.0, output.numel()).reshape(output.shape)
    return (output * weights).sum() + (state * state).sum()


def assert_close(actual: Any, expected: Any, name: str) -> None:
    """|Δ| ≤ 1e-4, relative to the reference's largest magnitude where that is above one."""
    scale = max(1.0, float(expected.detach().abs().max()))
    error = float((actual - expected).detach().abs().max())
    assert error <= 1e-4 * scale, f"{name}: max |Δ| {error:.2e} (scale {scale:.1f})"


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("length", LENGTHS)
def test_values_and_gradients_match_transformers(length: int, options: tuple[bool, bool, bool, bool]) -> None:
    inputs = scan_inputs(length, seed=length)
    expected, expected_state = call(transformers_scan(), inputs, options)
    actual, actual_state = call(_hf_ssm.chunked_selective_scan, inputs, options)
    assert actual.shape == expected.shape == (BATCH, D_INNER, length)
    assert_close(actual, expected, "output")
    assert_close(actual_state, expected_state, "last state")

    names = [name for name in inputs if inputs[name].requires_grad]
    expected_grads = torch.autograd.grad(
        loss_of(expected, expected_state), [inputs[n] for n in names], allow_unused=True
    )
    actual_grads = torch.autograd.grad(
        loss_of(actual, actual_state), [inputs[n] for n in names], allow_unused=True
    )
    compared = 0
    for name, want, got in zip(names, expected_grads, actual_grads, strict=True):
        assert (want is None) == (got is None), name
        if want is not None:
            assert_close(got, want, f"d loss / d {name}")
            compared += 1
    assert compared >= 5  # hidden_states, dt, A, B, C at least


@pytest.mark.parametrize("length", [CHUNK * 7 // 2, 3])
def test_initial_state_values_and_gradients_match_sequential(length: int) -> None:
    """transformers' scan cannot start from a state; evalkit's sequential reference can."""
    inputs = scan_inputs(length, seed=7)
    initial = (
        torch.randn(BATCH, D_INNER, STATE, generator=torch.Generator().manual_seed(3))
    ).requires_grad_()
    results = []
    for scan in (_hf_ssm.sequential_selective_scan, _hf_ssm.chunked_selective_scan):
        token = _hf_ssm._INITIAL_STATES.set([initial])
        try:
            output, state = call(scan, inputs, OPTIONS[0])
        finally:
            _hf_ssm._INITIAL_STATES.reset(token)
        wrt = [initial, inputs["hidden_states"], inputs["dt"], inputs["A"], inputs["B"], inputs["C"]]
        results.append((output, state, torch.autograd.grad(loss_of(output, state), wrt)))
    (want, want_state, want_grads), (got, got_state, got_grads) = results
    assert_close(got, want, "output")
    assert_close(got_state, want_state, "last state")
    for name, expected, actual in zip(
        ["initial", "u", "dt", "A", "B", "C"], want_grads, got_grads, strict=True
    ):
        assert_close(actual, expected, f"d loss / d {name}")


def test_split_scan_continues_the_whole_one() -> None:
    """Scanning a prefix, then the rest from its last state, gives the whole scan's outputs and state."""
    length, cut = CHUNK * 3, CHUNK + 3
    inputs = {k: v.detach() for k, v in scan_inputs(length, seed=11).items()}
    whole, whole_state = call(_hf_ssm.chunked_selective_scan, inputs, OPTIONS[0])
    head = {k: (v[..., :cut] if v.dim() == 3 else v) for k, v in inputs.items()}
    tail = {k: (v[..., cut:] if v.dim() == 3 else v) for k, v in inputs.items()}
    first, state = call(_hf_ssm.chunked_selective_scan, head, OPTIONS[0])
    token = _hf_ssm._INITIAL_STATES.set([state])
    try:
        second, last = call(_hf_ssm.chunked_selective_scan, tail, OPTIONS[0])
    finally:
        _hf_ssm._INITIAL_STATES.reset(token)
    assert_close(torch.cat([first, second], dim=-1), whole, "output")
    assert_close(last, whole_state, "last state")


def test_inference_path_equals_autograd_path() -> None:
    inputs = scan_inputs(CHUNK * 2 + 5, seed=5)
    with_grad, state = call(_hf_ssm.chunked_selective_scan, inputs, OPTIONS[0])
    assert with_grad.requires_grad
    with torch.inference_mode():
        plain, plain_state = call(_hf_ssm.chunked_selective_scan, inputs, OPTIONS[0])
    assert torch.equal(plain, with_grad.detach()) and torch.equal(plain_state, state.detach())


def test_wrong_initial_state_shape_is_refused() -> None:
    inputs = scan_inputs(4)
    token = _hf_ssm._INITIAL_STATES.set([torch.zeros(BATCH, D_INNER + 1, STATE)])
    try:
        with pytest.raises(RuntimeError, match="cached recurrent state has shape"):
            call(_hf_ssm.chunked_selective_scan, inputs, OPTIONS[0])
    finally:
        _hf_ssm._INITIAL_STATES.reset(token)


@pytest.mark.parametrize("load", [0.0, 1000.0])
def test_step_loops_go_to_one_thread_only_when_the_cpu_is_oversubscribed(
    load: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_hf_ssm.os, "getloadavg", lambda: (load, load, load))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with _hf_ssm._one_thread():
            inside = torch.get_num_threads()
        after = torch.get_num_threads()
        call(_hf_ssm.chunked_selective_scan, scan_inputs(CHUNK + 1), OPTIONS[0])[0].sum().backward()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert after == 2
    assert inside == (1 if load > (_hf_ssm.os.cpu_count() or 1) else 2)


def tiny_model(kind: str) -> Any:
    from transformers import JambaConfig, JambaForCausalLM, MambaConfig, MambaForCausalLM

    torch.manual_seed(0)
    if kind == "mamba":
        return MambaForCausalLM(MambaConfig(vocab_size=64, hidden_size=32, state_size=8, num_hidden_layers=2))
    config = JambaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        attn_layer_period=2,
        attn_layer_offset=1,
        num_experts=1,
        num_experts_per_tok=1,
        mamba_d_state=8,
        max_position_embeddings=256,
        initializer_range=0.1,
    )
    return JambaForCausalLM(config)


def train_step(model: Any, ids: Any) -> tuple[float, dict[str, Any], float]:
    """Loss and gradients of one AdamW step, and the loss after it."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    optimizer.step()
    with torch.no_grad():
        after = float(model(input_ids=ids, labels=ids).loss)
    return float(loss.detach()), grads, after


@pytest.mark.parametrize("kind", ["mamba", "jamba"])
def test_training_step_matches_unpatched(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_model(kind)
    reference = copy.deepcopy(model)
    assert _hf_ssm.install_scan_patch(model) == [kind]
    module = importlib.import_module(_hf_ssm._TARGETS[kind][0])
    ids = torch.randint(0, 64, (2, CHUNK * 4 + 3), generator=torch.Generator().manual_seed(0))
    loss, grads, after = train_step(model, ids)
    monkeypatch.setattr(module, "mamba_selective_scan", getattr(module, _hf_ssm.ORIGINAL_SCAN))
    want_loss, want_grads, want_after = train_step(reference, ids)
    assert abs(loss - want_loss) <= 1e-5 and abs(after - want_after) <= 1e-4
    assert grads.keys() == want_grads.keys()
    assert any("A_log" in name for name in grads)  # the scan's own parameters get gradients
    for name, want in want_grads.items():
        assert_close(grads[name], want, name)
