"""The zoo's tokenizer: a byte-level BPE trained on the synthetic corpus, saved for transformers.

Byte-level, so every string round-trips exactly (no unknown token, no normalisation). One
special token, `<|endoftext|>`, separates packed documents and serves as BOS, EOS and padding,
as in GPT-2. Training is deterministic: the BPE trainer breaks ties between equally frequent
pairs by the pair itself, so the same corpus gives a byte-identical tokenizer.json.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

__all__ = ["ENDOFTEXT", "VOCAB_SIZE", "load_tokenizer", "save_tokenizer", "train_tokenizer"]

ENDOFTEXT = "<|endoftext|>"
VOCAB_SIZE = 1024


def train_tokenizer(texts: Iterable[str], vocab_size: int = VOCAB_SIZE) -> PreTrainedTokenizerFast:
    """A byte-level BPE of `vocab_size` entries (256 bytes, the merges, `<|endoftext|>`) over `texts`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[ENDOFTEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=ENDOFTEXT,
        eos_token=ENDOFTEXT,
        pad_token=ENDOFTEXT,
        unk_token=None,
        clean_up_tokenization_spaces=False,
        model_max_length=4096,
    )


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, folder: Path) -> None:
    """tokenizer.json and tokenizer_config.json, loadable by `AutoTokenizer.from_pretrained(folder)`."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(folder))


def load_tokenizer(folder: Path) -> PreTrainedTokenizerFast:
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if not isinstance(tokenizer, PreTrainedTokenizerFast):
        raise TypeError(f"{folder} holds a {type(tokenizer).__name__}, not a fast tokenizer")
    return tokenizer
