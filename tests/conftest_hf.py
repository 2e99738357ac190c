"""Tiny, randomly initialised causal LMs and an offline tokenizer for the transformers-backend tests.

Everything is built from configs in a temporary folder in about a second: no hub, no weights
shipped in the repo. Models are saved with `save_pretrained`, so the tests exercise the same
loading path a user's local folder takes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Question: Which gas do plants absorb from the air? Answer: carbon dioxide",
    "A committee met on a cold morning to decide which bridge to repair first.",
    "Water boils at one hundred degrees at sea level, and freezes at zero.",
    "She sells sea shells by the sea shore; the shells she sells are surely sea shells.",
    "Numbers 0 1 2 3 4 5 6 7 8 9 and punctuation , . ; : ! ? ( ) \" ' - appear too.",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def build_tokenizer(add_bos: bool = True) -> Any:
    """A byte-level BPE (vocab ~400) with <s>, </s>, <pad>; prepends <s> like Llama when add_bos."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<s>", "</s>", "<|user|>", "<|assistant|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(CORPUS * 4, trainer=trainer)
    if add_bos:
        core.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
        )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_model(kind: str, vocab_size: int) -> Any:
    """A 2-4 layer, hidden-64 model of the given architecture with a deterministic random init.

    Kinds: llama, gemma3 (transformers); mamba, mamba2, falcon_mamba (ssm); jamba, zamba (hybrid:
    both attention and mamba layers).
    """
    import torch
    from transformers import (
        AutoModelForCausalLM,
        FalconMambaConfig,
        Gemma3TextConfig,
        JambaConfig,
        LlamaConfig,
        Mamba2Config,
        MambaConfig,
        ZambaConfig,
    )

    torch.manual_seed(0)
    if kind == "llama":
        config: Any = LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
            initializer_range=0.2,
            tie_word_embeddings=False,
        )
    elif kind == "gemma3":
        # A sliding window of 6 makes packed rows longer than the window: the mask must model it.
        config = Gemma3TextConfig(
            vocab_size=vocab_size,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=16,
            max_position_embeddings=256,
            sliding_window=6,
            layer_types=["sliding_attention", "sliding_attention", "full_attention"],
            final_logit_softcapping=5.0,
            initializer_range=0.2,
        )
    elif kind == "mamba":
        config = MambaConfig(
            vocab_size=vocab_size,
            hidden_size=64,
            state_size=8,
            num_hidden_layers=2,
            initializer_range=0.2,
        )
    elif kind == "mamba2":
        config = Mamba2Config(
            vocab_size=vocab_size,
            hidden_size=64,
            num_heads=8,
            head_dim=16,  # num_heads * head_dim = expand * hidden_size
            n_groups=1,
            state_size=8,
            num_hidden_layers=2,
            chunk_size=16,
            initializer_range=0.2,
        )
    elif kind == "falcon_mamba":
        config = FalconMambaConfig(
            vocab_size=vocab_size,
            hidden_size=64,
            state_size=8,
            num_hidden_layers=2,
            initializer_range=0.2,
        )
    elif kind == "jamba":
        # Layers: mamba, mamba, attention, mamba (attention at offset 2 of period 4); one MoE layer.
        config = JambaConfig(
            vocab_size=vocab_size,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            attn_layer_period=4,
            attn_layer_offset=2,
            expert_layer_period=4,
            expert_layer_offset=3,
            num_experts=2,
            num_experts_per_tok=1,
            mamba_d_state=8,
            max_position_embeddings=1024,
            initializer_range=0.1,  # 0.2 amplifies float32 rounding to ~1e-4 in the logits
        )
    elif kind == "zamba":
        # Layers: mamba, hybrid, mamba, hybrid (a hybrid layer runs the shared attention block, then
        # a mamba mixer; transformers ties the shared block across hybrid layers, so two are needed).
        config = ZambaConfig(
            vocab_size=vocab_size,
            hidden_size=64,
            attention_hidden_size=128,
            intermediate_size=128,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=4,
            n_mamba_heads=2,
            layers_block_type=["linear_attention", "hybrid", "linear_attention", "hybrid"],
            mamba_d_state=8,
            max_position_embeddings=1024,
            initializer_range=0.1,
        )
    else:
        raise ValueError(kind)
    model = AutoModelForCausalLM.from_config(config)
    return model.eval()


def save_tiny_model(root: Path, kind: str, add_bos: bool = True) -> Path:
    tokenizer = build_tokenizer(add_bos=add_bos)
    model = build_model(kind, vocab_size=len(tokenizer))
    folder = root / kind
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_tiny_llama_gguf(path: Path, add_bos: bool = True) -> Path:
    """A 2-layer llama GGUF (F32 tensors, GPT-2-style BPE vocabulary) written with the gguf package.

    Tensor values are random: the tests check loading, caching and facts, not text quality.
    """
    import json

    import gguf
    import numpy as np

    tokenizer = build_tokenizer(add_bos=add_bos)
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab: dict[str, int] = state["model"]["vocab"]
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in state["model"]["merges"]]
    special = {"<pad>", "<s>", "</s>", "<|user|>", "<|assistant|>"}
    n_vocab, hidden, ffn, layers, heads, kv_heads = len(tokens), 64, 128, 2, 4, 2
    head_dim = hidden // heads

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama")
    writer.add_context_length(128)
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_vocab_size(n_vocab)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in special else 1 for t in tokens])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(vocab["<s>"])
    writer.add_eos_token_id(vocab["</s>"])
    writer.add_pad_token_id(vocab["<pad>"])
    writer.add_add_bos_token(add_bos)

    rng = np.random.default_rng(0)

    def tensor(name: str, *shape: int, scale: float = 0.2) -> None:
        writer.add_tensor(name, (rng.standard_normal(shape) * scale).astype(np.float32))

    tensor("token_embd.weight", n_vocab, hidden)
    tensor("output.weight", n_vocab, hidden)
    writer.add_tensor("output_norm.weight", np.ones(hidden, dtype=np.float32))
    for i in range(layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(hidden, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(hidden, dtype=np.float32))
        tensor(f"blk.{i}.attn_q.weight", hidden, hidden)
        tensor(f"blk.{i}.attn_k.weight", kv_heads * head_dim, hidden)
        tensor(f"blk.{i}.attn_v.weight", kv_heads * head_dim, hidden)
        tensor(f"blk.{i}.attn_output.weight", hidden, hidden)
        tensor(f"blk.{i}.ffn_gate.weight", ffn, hidden)
        tensor(f"blk.{i}.ffn_up.weight", ffn, hidden)
        tensor(f"blk.{i}.ffn_down.weight", hidden, ffn)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
