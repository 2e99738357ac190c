"""Haystacks: the filler text that long-context generators hide their needles in.

A haystack is a stream of *units* (sentences) per seed. Every stream is prefix-stable: the first
`n` units of a seed never change when more are asked for, so a sample can grow or shrink its filler
one unit at a time. Three kinds exist:

- `noise`: one fixed sentence, repeated (RULER's filler idea, in this project's own words);
- `prose`: sentences built from the shipped word lists with a few patterns, seeded per sample;
- a path to a UTF-8 text file: its sentences in file order, the same for every seed, and finite.

Generated text never contains digits, hyphens or the phrases needles use, so nothing in the filler
can be mistaken for a needle.
"""

from __future__ import annotations

import hashlib
import random
import re
import stat
import threading
from collections import OrderedDict
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Protocol, runtime_checkable

from evalkit.longcontext._types import HaystackExhausted

NOISE_SENTENCE = (
    "The river keeps flowing. The hills stay where they are. The clouds drift past. "
    "Nothing much happens here. Round and round it goes."
)


@runtime_checkable
class Haystack(Protocol):
    """A prefix-stable stream of filler sentences per seed."""

    identity: str  # recorded with results: "noise", "prose-v1", "file:<name>:<sha256[:16]>"

    def units(self, seed: int, count: int) -> list[str]:
        """The first `count` units of this seed's stream (HaystackExhausted if fewer exist)."""
        ...

    def max_units(self) -> int | None:
        """How many units exist (None: unbounded)."""
        ...


class HaystackError(ValueError):
    """The haystack cannot be used (missing, unreadable, empty, or without sentences)."""


@cache
def word_list(name: str) -> tuple[str, ...]:
    """A shipped word list (`words/<name>.txt`), in file order, blank lines skipped."""
    text = (files("evalkit.longcontext") / "words" / f"{name}.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


class NoiseHaystack:
    """The same sentence for every unit and every seed."""

    identity = "noise"

    def units(self, seed: int, count: int) -> list[str]:
        return [NOISE_SENTENCE] * max(count, 0)

    def max_units(self) -> int | None:
        return None


class ProseHaystack:
    """Seeded procedural prose: sentence `i` of a seed depends only on the seed and `i`'s predecessors.

    Streams are generated sequentially from `random.Random(f"prose-v1:{seed}")` (string seeds are
    stable across Python versions and machines); the streams of the few most recent seeds are kept.
    """

    identity = "prose-v1"
    _KEEP = 8

    def __init__(self) -> None:
        self._streams: OrderedDict[int, tuple[random.Random, list[str]]] = OrderedDict()
        self._lock = threading.Lock()

    def units(self, seed: int, count: int) -> list[str]:
        with self._lock:
            stream = self._streams.pop(seed, None) or (random.Random(f"prose-v1:{seed}"), [])
            self._streams[seed] = stream
            while len(self._streams) > self._KEEP:
                self._streams.popitem(last=False)
            rng, made = stream
            while len(made) < count:
                made.append(_sentence(rng))
            return made[: max(count, 0)]

    def max_units(self) -> int | None:
        return None


def _sentence(rng: random.Random) -> str:
    noun, adj, verb = word_list("nouns"), word_list("adjectives"), word_list("verbs")
    adverb, place = word_list("adverbs"), word_list("places")
    c = rng.choice
    pattern = rng.randrange(8)
    if pattern == 0:
        text = f"the {c(adj)} {c(noun)} {c(verb)} the {c(noun)} near the {c(place)}."
    elif pattern == 1:
        text = f"a {c(noun)} was {c(adverb)} {c(verb)} by the {c(adj)} {c(noun)}."
    elif pattern == 2:
        text = f"every {c(noun)} in the {c(place)} looked {c(adj)} and {c(adj)}."
    elif pattern == 3:
        text = f"{c(adverb)}, someone {c(verb)} a {c(adj)} {c(noun)} on the way to the {c(place)}."
    elif pattern == 4:
        text = f"nobody knew why the {c(noun)} had been {c(verb)} beside the {c(adj)} {c(place)}."
    elif pattern == 5:
        text = f"there was a {c(adj)} {c(noun)} behind the {c(noun)}, and it seemed {c(adj)}."
    elif pattern == 6:
        text = f"in the {c(adj)} {c(place)}, the old {c(noun)} {c(verb)} a {c(noun)} {c(adverb)}."
    else:
        text = f"the {c(noun)} and the {c(noun)} {c(adverb)} {c(verb)} the {c(adj)} {c(noun)}."
    return text[0].upper() + text[1:]


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"'\u201d\u2019)\]])\s+")


# 32k tokens of filler is ~150 kB of English; 64 MiB leaves room for any sensible source text.
MAX_HAYSTACK_BYTES = 64 * 2**20


class FileHaystack:
    """A user's text file split into sentences, taken in file order (the seed is ignored)."""

    def __init__(self, path: Path) -> None:
        try:
            # Only a regular file of bounded size: a FIFO would block the run forever and a device
            # such as /dev/zero would fill memory before any error could be raised.
            mode = path.stat().st_mode
            if not stat.S_ISREG(mode):
                raise HaystackError(f"{str(path)!r} is not a regular file")
            with path.open("rb") as handle:
                data = handle.read(MAX_HAYSTACK_BYTES + 1)
            if len(data) > MAX_HAYSTACK_BYTES:
                raise HaystackError(
                    f"{str(path)!r} is larger than {MAX_HAYSTACK_BYTES // 2**20} MiB "
                    "(32k tokens of filler is about 150 kB)"
                )
        except FileNotFoundError:
            raise HaystackError(f"file {str(path)!r} does not exist") from None
        except OSError as exc:
            raise HaystackError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HaystackError(f"{str(path)!r} is not UTF-8 text (byte {exc.start})") from None
        if not text.strip():
            raise HaystackError(f"{str(path)!r} is empty")
        self._units = split_sentences(text)
        if not self._units:
            raise HaystackError(f"{str(path)!r} holds no sentences")
        self.identity = f"file:{path.name}:{hashlib.sha256(data).hexdigest()[:16]}"

    def units(self, seed: int, count: int) -> list[str]:
        if count > len(self._units):
            raise HaystackExhausted(len(self._units))
        return self._units[: max(count, 0)]

    def max_units(self) -> int | None:
        return len(self._units)


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`: split at blank lines and after sentence-ending punctuation, whitespace
    collapsed to single spaces; pieces without a letter or digit (stray punctuation) are dropped."""
    units: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        flat = " ".join(paragraph.split())
        for piece in _SENTENCE_END.split(flat):
            piece = piece.strip()
            if any(ch.isalnum() for ch in piece):
                units.append(piece)
    return units


def make_haystack(value: str, base_dir: Path | None) -> Haystack:
    """`noise`, `prose`, or a text file's path (relative to `base_dir`, the task file's folder)."""
    if value == "noise":
        return NoiseHaystack()
    if value == "prose":
        return ProseHaystack()
    if not value.strip():
        raise HaystackError("no haystack given (use 'noise', 'prose' or a text file's path)")
    path = Path(value).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if path.is_dir():
        raise HaystackError(f"{str(path)!r} is a folder, not a text file")
    return FileHaystack(path)
