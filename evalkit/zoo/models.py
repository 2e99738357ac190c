"""The three zoo families at matched size: a Llama transformer, a Mamba and a Jamba-style hybrid.

All three share the tokenizer's 1024-entry vocabulary, width 128 and tied input/output
embeddings, and sit within 10% of one another in parameter count (about 0.55M, of which
~110k are the embedding). Depth is what differs: a Mamba block (mixer only) is about half a
transformer block (attention + MLP), so the Mamba has twice the layers. The hybrid alternates
Mamba and attention mixers, each followed by an MLP (one expert: no mixture of experts). The
Mamba layers run transformers' torch path (no mamba-ssm kernels on a CPU), patched with evalkit's
scan for training and evaluation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = [
    "FAMILIES",
    "MAX_POSITIONS",
    "WIDTH",
    "build_model",
    "family_of",
    "model_config",
    "parameter_count",
]

WIDTH = 128
# Positions the Llama's RoPE is configured for: evaluation up to 16x the training length (256).
MAX_POSITIONS = 4096
# name -> family, as evalkit's describe() reports it
FAMILIES = {"zoo-llama": "transformer", "zoo-mamba": "ssm", "zoo-hybrid": "hybrid"}


def family_of(name: str) -> str:
    return FAMILIES[name]


def model_config(name: str, vocab_size: int, eos_id: int) -> Any:
    """The transformers config of zoo model `name` for a tokenizer of `vocab_size` entries."""
    # every family: the same width and vocabulary, tied embeddings, <|endoftext|> as BOS, EOS and pad
    shared: dict[str, Any] = {
        "vocab_size": vocab_size,
        "hidden_size": WIDTH,
        "tie_word_embeddings": True,
        "bos_token_id": eos_id,
        "eos_token_id": eos_id,
        "pad_token_id": eos_id,
    }
    if name == "zoo-llama":
        from transformers import LlamaConfig

        return LlamaConfig(
            **shared,
            intermediate_size=384,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=MAX_POSITIONS,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        )
    if name == "zoo-mamba":
        from transformers import MambaConfig

        return MambaConfig(
            **shared,
            state_size=16,
            num_hidden_layers=4,
            expand=2,
            conv_kernel=4,
            use_mambapy=False,
        )
    if name == "zoo-hybrid":
        from transformers import JambaConfig

        return JambaConfig(
            **shared,
            intermediate_size=320,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            num_experts=1,
            num_experts_per_tok=1,
            expert_layer_period=1,
            expert_layer_offset=0,
            # layer 0 is Mamba, layer 1 attends (Jamba has no RoPE: the Mamba layer carries position)
            attn_layer_period=2,
            attn_layer_offset=1,
            mamba_d_state=16,
            mamba_d_conv=4,
            mamba_expand=2,
            max_position_embeddings=MAX_POSITIONS,
        )
    raise KeyError(name)


def build_model(name: str, vocab_size: int, eos_id: int) -> torch.nn.Module:
    """A freshly initialised model (its weights drawn from torch's global generator: seed it first)."""
    from transformers import AutoModelForCausalLM

    model: torch.nn.Module = AutoModelForCausalLM.from_config(model_config(name, vocab_size, eos_id))
    return model


def parameter_count(model: torch.nn.Module) -> int:
    """Distinct parameters (a tied embedding counts once)."""
    return sum(p.numel() for p in model.parameters())
