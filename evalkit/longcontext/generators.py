"""Seeded synthetic long-context tasks in the style of RULER: needles, variable chains, word counts.

A generator turns (parameters, haystack, per-sample seed, depth) into a `Layout` whose amount of
filler the fitter chooses. Everything random is drawn from `random.Random` seeded with a string
(stable across Python versions and machines) before the depth is looked at, so the layouts of one
seed at different depths share their filler and their needle and question text: only where the
target needles sit differs. Distractor needles sit at seeded positions that ignore the depth.

Needle placement (haystack generators): a needle has a position in [0, 1] and goes before filler
unit `floor(position * units + 0.5)` (after the last unit when that equals `units`); needles in the
same gap keep the order the generator lists them in. When several target needles exist, the first
sits at `depth` and the others are spread evenly over the rest of the haystack: target `j` of `m`
sits at `depth + (1 - depth) * j / m`. A haystack of None means the noise haystack. Filler units
and needles are joined by single spaces.
A top-up of `partial_words` words of the next unit goes at the very end, after any needle at depth
1.0; it is capped at one word fewer than that unit has (`Rendered.partial_words` says how many were
used), so a partial unit is never a whole one.
"""

from __future__ import annotations

import heapq
import math
import random
import string
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from evalkit.longcontext._types import GeneratorInfo, Layout, Probe, Rendered
from evalkit.longcontext.haystack import Haystack, NoiseHaystack, word_list
from evalkit.registry import Registry

ValueType = Literal["words", "numbers", "uuids"]
UNSEEN_DISTRACTORS = 4  # wrong values never shown in the context, added per probe for ranking
NUMBER_DIGITS = 7  # digits of the numbers used as niah / associative-recall keys and values
_NOUN = {"words": "words", "numbers": "numbers", "uuids": "UUIDs"}

P = TypeVar("P", bound=BaseModel)


class Generator(Protocol):
    """A registered synthetic task: its facts, its parameters model, and how it lays out a sample."""

    info: GeneratorInfo
    params_model: type[BaseModel]

    def layout(
        self, params: BaseModel, haystack: Haystack | None, *, seed: int, depth: float | None
    ) -> Layout:
        """One sample of this seed. `depth` in [0, 1] when `info.uses_depth`, else ignored."""
        ...


# ---------------------------------------------------------------------------------------------
# Layouts


@dataclass(frozen=True)
class Needle:
    """A sentence inserted into the filler at `position` (a fraction of the filler units)."""

    text: str
    position: float
    target: bool


class NeedleLayout:
    """Haystack units joined by single spaces, with needles inserted between them."""

    def __init__(
        self,
        haystack: Haystack,
        seed: int,
        instruction: str,
        needles: Sequence[Needle],
        probes: tuple[Probe, ...],
    ) -> None:
        self._haystack = haystack
        self._seed = seed
        self._instruction = instruction
        self._needles = tuple(needles)
        self._probes = probes

    @property
    def max_units(self) -> int | None:
        return self._haystack.max_units()

    def render(self, units: int, partial_words: int = 0) -> Rendered:
        _check_amounts(units, partial_words)
        filler = self._haystack.units(self._seed, units + (1 if partial_words else 0))
        tail = ""
        if partial_words:
            words = filler[units].split()
            partial_words = min(partial_words, len(words) - 1)
            tail = " ".join(words[:partial_words])
        slots: dict[int, list[Needle]] = {}
        for needle in self._needles:
            slots.setdefault(_slot(needle.position, units), []).append(needle)
        pieces: list[str] = []
        spans: list[tuple[int, int]] = []
        offset = 0

        def add(text: str, target: bool = False) -> None:
            nonlocal offset
            if pieces:
                offset += 1  # the joining space
            if target:
                spans.append((offset, offset + len(text)))
            pieces.append(text)
            offset += len(text)

        for index in range(units + 1):
            for needle in slots.get(index, ()):
                add(needle.text, needle.target)
            if index < units:
                add(filler[index])
        if tail:
            add(tail)
        return Rendered(self._instruction, " ".join(pieces), tuple(spans), self._probes, units, partial_words)


class WordListLayout:
    """A context made of generated words: fixed `base` items plus `groups[i]` per unit `i`.

    Every item carries a seeded sort key; the context lists all present items in key order, so one
    more unit inserts its items among the others without reordering them (the length only grows).
    A top-up adds the first `partial_words` items of the next unit (fewer than the whole unit).
    """

    def __init__(self, instruction: str, numbered: bool) -> None:
        self._instruction = instruction
        self._numbered = numbered
        self.probes: tuple[Probe, ...] = ()
        self.base: list[tuple[float, str]] = []
        self.groups: list[list[tuple[float, str]]] = []

    @property
    def max_units(self) -> int | None:
        return None

    def extend(self, count: int) -> None:
        """Make sure at least `count` unit groups exist (subclasses generate them in order)."""
        raise NotImplementedError

    def render(self, units: int, partial_words: int = 0) -> Rendered:
        _check_amounts(units, partial_words)
        self.extend(units + 1)
        items = list(self.base)
        for group in self.groups[:units]:
            items.extend(group)
        partial_words = min(partial_words, len(self.groups[units]) - 1)
        items.extend(self.groups[units][:partial_words])
        items.sort()
        if self._numbered:
            context = " ".join(f"{i}. {word}" for i, (_, word) in enumerate(items, 1))
        else:
            context = " ".join(word for _, word in items)
        return Rendered(self._instruction, context, (), self.probes, units, partial_words)


def _check_amounts(units: int, partial_words: int) -> None:
    if units < 0 or partial_words < 0:
        raise ValueError(f"units and partial_words must be >= 0, got {units} and {partial_words}")


def _slot(position: float, units: int) -> int:
    return min(units, max(0, math.floor(position * units + 0.5)))


def _spread(depth: float, count: int) -> list[float]:
    """Positions of `count` target needles: the first at `depth`, the rest evenly after it."""
    return [depth + (1.0 - depth) * j / count for j in range(count)]


# ---------------------------------------------------------------------------------------------
# Drawing values


def _draw(rng: random.Random, kind: ValueType, used: set[str], digits: int = NUMBER_DIGITS) -> str:
    """A new value of `kind` not in `used` (which it joins)."""
    for _ in range(10_000):
        if kind == "words":
            value = f"{rng.choice(word_list('adjectives'))}-{rng.choice(word_list('nouns'))}"
        elif kind == "numbers":
            value = str(rng.randrange(10 ** (digits - 1) if digits > 1 else 0, 10**digits))
        else:
            value = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if value not in used:
            used.add(value)
            return value
    raise ValueError(f"cannot draw enough distinct {kind} (raise the number of digits or ask for fewer)")


def _variable(rng: random.Random, used: set[str]) -> str:
    for _ in range(10_000):
        name = "".join(rng.choice(string.ascii_uppercase) for _ in range(5))
        if name not in used:
            used.add(name)
            return name
    raise AssertionError("ran out of variable names")


def _listing(items: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b, and c'."""
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + ", and " + items[-1]


def checked_params(model: type[P], params: BaseModel) -> P:
    """`params` as `model`, validated again (a sweep's `model_copy(update=...)` skips validation)."""
    if not isinstance(params, model):
        raise TypeError(f"expected {model.__name__}, got {type(params).__name__}")
    return model.model_validate(params.model_dump())


def _depth(depth: float | None) -> float:
    if depth is None or not 0.0 <= depth <= 1.0:
        raise ValueError(f"depth must be in [0, 1], got {depth!r}")
    return depth


def _frozen() -> ConfigDict:
    # strict: `pairs: '5'` or `digits: true` in a task file is an error at its line, never coerced
    return ConfigDict(extra="forbid", frozen=True, strict=True)


# ---------------------------------------------------------------------------------------------
# passkey


class PasskeyParams(BaseModel):
    model_config = _frozen()

    digits: int = Field(default=5, ge=1, le=30, description="digits of the pass key")


class Passkey:
    """One number hidden in filler; the model is asked for it."""

    info = GeneratorInfo(
        name="passkey",
        uses_depth=True,
        uses_haystack=True,
        summary="retrieve a pass key (a number) hidden in filler text",
    )
    params_model: type[BaseModel] = PasskeyParams
    instruction = (
        "Somewhere in the long stretch of unimportant text below, one important piece of information "
        "is hidden. Find it and remember it: you will be asked about it afterwards."
    )

    def layout(
        self, params: BaseModel, haystack: Haystack | None, *, seed: int, depth: float | None
    ) -> Layout:
        p = checked_params(PasskeyParams, params)
        where = _depth(depth)
        rng = random.Random(f"passkey:{seed}")
        used: set[str] = set()
        key = _draw(rng, "numbers", used, p.digits)
        unseen = tuple(_draw(rng, "numbers", used, p.digits) for _ in range(UNSEEN_DISTRACTORS))
        needle = Needle(f"The pass key is {key}. Keep it in mind: {key} is the pass key.", where, True)
        probe = Probe("What is the pass key?", "The pass key is", (key,), unseen)
        return NeedleLayout(haystack or NoiseHaystack(), seed, self.instruction, [needle], (probe,))


# ---------------------------------------------------------------------------------------------
# niah


class NiahParams(BaseModel):
    model_config = _frozen()

    keys: int = Field(default=1, ge=1, le=1000, description="keys with needles; those not queried distract")
    values: int = Field(default=1, ge=1, le=100, description="values (needles) per key; all are answers")
    queries: int = Field(default=1, ge=1, le=1000, description="keys asked for in the one question")
    key_type: ValueType = "words"
    value_type: ValueType = "numbers"

    @model_validator(mode="after")
    def _queries_within_keys(self) -> NiahParams:
        if self.queries > self.keys:
            raise ValueError(f"queries ({self.queries}) cannot exceed keys ({self.keys})")
        return self


class Niah:
    """Needles 'One of the special magic numbers for KEY is: VALUE.'; asks for the queried keys' values."""

    info = GeneratorInfo(
        name="niah",
        uses_depth=True,
        uses_haystack=True,
        summary="needle in a haystack: single, multi-key, multi-value and multi-query retrieval",
        sweepable=("keys", "values", "queries"),
    )
    params_model: type[BaseModel] = NiahParams

    def layout(
        self, params: BaseModel, haystack: Haystack | None, *, seed: int, depth: float | None
    ) -> Layout:
        p = checked_params(NiahParams, params)
        where = _depth(depth)
        rng = random.Random(f"niah:{seed}")
        used: set[str] = set()
        keys = [_draw(rng, p.key_type, used) for _ in range(p.keys)]
        values = [[_draw(rng, p.value_type, used) for _ in range(p.values)] for _ in keys]
        spots = [rng.random() for _ in range((p.keys - p.queries) * p.values)]
        unseen = [_draw(rng, p.value_type, used) for _ in range(UNSEEN_DISTRACTORS)]

        noun = _NOUN[p.value_type]
        queried, answers = keys[: p.queries], [v for vs in values[: p.queries] for v in vs]
        shown = [v for vs in values[p.queries :] for v in vs]
        texts = [
            f"One of the special magic {noun} for {k} is: {v}."
            for k, vs in zip(keys, values, strict=True)
            for v in vs
        ]
        targets = texts[: len(answers)]
        needles = [Needle(t, pos, True) for t, pos in zip(targets, _spread(where, len(targets)), strict=True)]
        needles += [Needle(t, pos, False) for t, pos in zip(texts[len(answers) :], spots, strict=True)]
        asked = _listing(queried)
        probe = Probe(
            f"What are all the special magic {noun} for {asked} mentioned in the provided text?",
            f"The special magic {noun} for {asked} mentioned in the provided text are",
            tuple(answers),
            (*shown, *unseen),
        )
        instruction = (
            f"A few special magic {noun} are hidden inside the text below. Read it carefully and "
            f"memorise them: you will be asked about the {noun} afterwards."
        )
        return NeedleLayout(haystack or NoiseHaystack(), seed, instruction, needles, (probe,))


# ---------------------------------------------------------------------------------------------
# variable_tracking


class VariableTrackingParams(BaseModel):
    model_config = _frozen()

    hops: int = Field(default=4, ge=1, le=100, description="assignments after the first, per chain")
    chains: int = Field(default=1, ge=1, le=50, description="chains in all; all but the first distract")
    digits: int = Field(default=5, ge=2, le=30, description="digits of the value each chain starts from")


class VariableTracking:
    """Chains 'VAR A = 12345.', 'VAR B = VAR A.', ...; asks for every variable holding the value."""

    info = GeneratorInfo(
        name="variable_tracking",
        uses_depth=True,
        uses_haystack=True,
        summary="follow chains of variable assignments hidden in filler (multi-hop tracing)",
        sweepable=("hops", "chains"),
    )
    params_model: type[BaseModel] = VariableTrackingParams
    instruction = (
        "Statements of the form VAR NAME = ... are hidden among the irrelevant text below. Memorise "
        "them and follow every chain of assignments: you will be asked which variables end up holding "
        "a given value."
    )

    def layout(
        self, params: BaseModel, haystack: Haystack | None, *, seed: int, depth: float | None
    ) -> Layout:
        p = checked_params(VariableTrackingParams, params)
        where = _depth(depth)
        rng = random.Random(f"variable_tracking:{seed}")
        names: set[str] = set()
        numbers: set[str] = set()
        chains: list[tuple[list[str], str]] = []
        for _ in range(p.chains):
            chain = [_variable(rng, names) for _ in range(p.hops + 1)]
            chains.append((chain, _draw(rng, "numbers", numbers, p.digits)))
        spots = [sorted(rng.random() for _ in range(p.hops + 1)) for _ in range(p.chains - 1)]
        unseen = [_variable(rng, names) for _ in range(UNSEEN_DISTRACTORS)]

        def statements(chain: list[str], value: str) -> list[str]:
            sources = [value, *(f"VAR {name}" for name in chain[:-1])]
            return [f"VAR {name} = {source}." for name, source in zip(chain, sources, strict=True)]

        (answer_chain, value), others = chains[0], chains[1:]
        first = statements(answer_chain, value)
        needles = [Needle(t, pos, True) for t, pos in zip(first, _spread(where, len(first)), strict=True)]
        for (chain, other), positions in zip(others, spots, strict=True):
            needles += [
                Needle(t, pos, False) for t, pos in zip(statements(chain, other), positions, strict=True)
            ]
        probe = Probe(
            f"Find all variables that are assigned the value {value} in the text above.",
            f"Answer: Following the chain of assignments in the text above, {len(answer_chain)} variables "
            f"hold the value {value}. They are:",
            tuple(answer_chain),
            (*(name for chain, _ in others for name in chain), *unseen),
        )
        return NeedleLayout(haystack or NoiseHaystack(), seed, self.instruction, needles, (probe,))


# ---------------------------------------------------------------------------------------------
# associative_recall


class AssociativeRecallParams(BaseModel):
    model_config = _frozen()

    pairs: int = Field(default=16, ge=1, le=5000, description="key-value pairs stated in the context")
    queries: int = Field(default=4, ge=1, le=5000, description="keys asked for, one question each")
    key_type: ValueType = "words"
    value_type: ValueType = "numbers"

    @model_validator(mode="after")
    def _queries_within_pairs(self) -> AssociativeRecallParams:
        if self.queries > self.pairs:
            raise ValueError(f"queries ({self.queries}) cannot exceed pairs ({self.pairs})")
        return self


class AssociativeRecall:
    """A block of 'The value of key KEY is VALUE.' at `depth`; one question per queried key."""

    info = GeneratorInfo(
        name="associative_recall",
        uses_depth=True,
        uses_haystack=True,
        summary="multi-query associative recall: look up several keys in a block of key-value pairs",
        sweepable=("pairs",),
    )
    params_model: type[BaseModel] = AssociativeRecallParams
    instruction = (
        "The text below states the values of a number of keys, among irrelevant sentences. Memorise "
        "each key and its value: you will be asked for the value of a key afterwards."
    )

    def layout(
        self, params: BaseModel, haystack: Haystack | None, *, seed: int, depth: float | None
    ) -> Layout:
        p = checked_params(AssociativeRecallParams, params)
        where = _depth(depth)
        rng = random.Random(f"associative_recall:{seed}")
        used: set[str] = set()
        keys = [_draw(rng, p.key_type, used) for _ in range(p.pairs)]
        values = [_draw(rng, p.value_type, used) for _ in range(p.pairs)]
        asked = rng.sample(range(p.pairs), p.queries)
        unseen = tuple(_draw(rng, p.value_type, used) for _ in range(UNSEEN_DISTRACTORS))

        chosen = set(asked)
        needles = [
            Needle(f"The value of key {k} is {v}.", where, i in chosen)
            for i, (k, v) in enumerate(zip(keys, values, strict=True))
        ]
        probes = tuple(
            Probe(
                f"What is the value of key {keys[i]}?",
                f"The value of key {keys[i]} is",
                (values[i],),
                (*values[:i], *values[i + 1 :], *unseen),
            )
            for i in asked
        )
        return NeedleLayout(haystack or NoiseHaystack(), seed, self.instruction, needles, probes)


# ---------------------------------------------------------------------------------------------
# common_words


class CommonWordsParams(BaseModel):
    model_config = _frozen()

    common: int = Field(default=10, ge=1, le=100, description="words that appear often; the answers")
    common_repeats: int = Field(default=30, ge=2, description="times each common word appears")
    uncommon_repeats: int = Field(default=3, ge=1, description="times each filler word appears")

    @model_validator(mode="after")
    def _common_is_more(self) -> CommonWordsParams:
        if self.common_repeats <= self.uncommon_repeats:
            raise ValueError(
                f"common_repeats ({self.common_repeats}) must exceed "
                f"uncommon_repeats ({self.uncommon_repeats})"
            )
        return self


_LISTS = ("nouns", "adjectives", "verbs", "adverbs", "places")


class _CommonWordsLayout(WordListLayout):
    """Units are uncommon words (each with its repeats). Single words from the shipped lists come
    first; when they run out, 'adjective-noun' compounds follow."""

    def __init__(self, p: CommonWordsParams, seed: int) -> None:
        self._words = random.Random(f"common_words:{seed}")
        self._keys = random.Random(f"common_words-order:{seed}")
        pool = list(dict.fromkeys(w for name in _LISTS for w in word_list(name)))
        self._words.shuffle(pool)
        self._pool = pool[p.common :]
        self._used = set(pool)
        self._repeats = p.uncommon_repeats
        self.uncommon: list[str] = []
        commons = pool[: p.common]
        super().__init__(CommonWords.instruction, numbered=True)
        self.base = [(self._keys.random(), w) for w in commons for _ in range(p.common_repeats)]
        self.extend(p.common)
        self.probes = (
            Probe(
                f"What are the {p.common} most common words in the list above?",
                f"Answer: The {p.common} most common words in the list above are:",
                tuple(commons),
                tuple(self.uncommon[: p.common]),
            ),
        )

    def extend(self, count: int) -> None:
        while len(self.groups) < count:
            i = len(self.groups)
            word = self._pool[i] if i < len(self._pool) else _draw(self._words, "words", self._used)
            self.uncommon.append(word)
            self.groups.append([(self._keys.random(), word) for _ in range(self._repeats)])


class CommonWords:
    """A numbered list of words; a few appear many times. Asks for the most common ones (RULER's CWE)."""

    info = GeneratorInfo(
        name="common_words",
        uses_depth=False,
        uses_haystack=False,
        summary="common words extraction: name the most common words of a long list",
    )
    params_model: type[BaseModel] = CommonWordsParams
    instruction = (
        "Below is a numbered list of words. Some words appear in it many more times than others. "
        "Memorise the ones that appear most often."
    )

    def layout(
        self, params: BaseModel, haystack: Haystack | None, *, seed: int, depth: float | None
    ) -> Layout:
        return _CommonWordsLayout(checked_params(CommonWordsParams, params), seed)


# ---------------------------------------------------------------------------------------------
# frequent_words


class FrequentWordsParams(BaseModel):
    model_config = _frozen()

    vocabulary: int = Field(default=500, ge=2, le=100_000, description="distinct coded words")
    alpha: float = Field(default=2.0, ge=0.1, le=10.0, description="Zipf exponent of word frequencies")
    top: int = Field(default=3, ge=1, le=100, description="most frequent words asked for")

    @model_validator(mode="after")
    def _top_within_vocabulary(self) -> FrequentWordsParams:
        if self.top >= self.vocabulary:
            raise ValueError(f"top ({self.top}) must be below vocabulary ({self.vocabulary})")
        return self


class _FrequentWordsLayout(WordListLayout):
    """Units are single coded words. Word counts follow Zipf's law exactly rather than by sampling:
    unit `i` goes to the word of rank `r` with the highest `r**-alpha / (count_r + 0.5)`
    (Sainte-Laguë apportionment, ties to the lower rank), so counts never fall as units grow and a
    higher rank never has fewer occurrences than a lower one. The `top` words also appear once in
    the base text, which makes them strictly more frequent than every other word."""

    def __init__(self, p: FrequentWordsParams, seed: int) -> None:
        super().__init__(FrequentWords.instruction, numbered=False)
        vocab_rng = random.Random(f"frequent_words:{seed}")
        words: dict[str, None] = {}
        while len(words) < p.vocabulary:
            length = vocab_rng.randint(3, 6)
            words["".join(vocab_rng.choice(string.ascii_lowercase) for _ in range(length))] = None
        self._vocabulary = list(words)
        self._keys = random.Random(f"frequent_words-order:{seed}")
        self._weights = [(rank + 1) ** -p.alpha for rank in range(p.vocabulary)]
        self._counts = [0] * p.vocabulary
        self._heap = [(-w / 0.5, rank) for rank, w in enumerate(self._weights)]
        heapq.heapify(self._heap)
        self.base = [(self._keys.random(), w) for w in self._vocabulary[: p.top]]
        self.probes = (
            Probe(
                f"What are the {p.top} most frequently appearing coded words in the text above?",
                f"Answer: The {p.top} most frequent coded words in the text above are:",
                tuple(self._vocabulary[: p.top]),
                tuple(self._vocabulary[p.top : p.top + max(p.top, UNSEEN_DISTRACTORS)]),
            ),
        )

    def extend(self, count: int) -> None:
        while len(self.groups) < count:
            _, rank = heapq.heappop(self._heap)
            self._counts[rank] += 1
            heapq.heappush(self._heap, (-self._weights[rank] / (self._counts[rank] + 0.5), rank))
            self.groups.append([(self._keys.random(), self._vocabulary[rank])])


class FrequentWords:
    """Coded words with Zipf-distributed frequencies; asks for the most frequent (RULER's FWE)."""

    info = GeneratorInfo(
        name="frequent_words",
        uses_depth=False,
        uses_haystack=False,
        summary="frequent words extraction: name the most frequent coded words of a long text",
    )
    params_model: type[BaseModel] = FrequentWordsParams
    instruction = (
        "Below is a long text of coded words: meaningless strings of letters, separated by spaces. "
        "Some of them appear far more often than others. Keep track of how often each one appears."
    )

    def layout(
        self, params: BaseModel, haystack: Haystack | None, *, seed: int, depth: float | None
    ) -> Layout:
        return _FrequentWordsLayout(checked_params(FrequentWordsParams, params), seed)


# ---------------------------------------------------------------------------------------------
# Registry

# The built-ins, each an entry point of group evalkit.generators in evalkit's pyproject.toml.
PASSKEY = Passkey()
NIAH = Niah()
VARIABLE_TRACKING = VariableTracking()
COMMON_WORDS = CommonWords()
FREQUENT_WORDS = FrequentWords()
ASSOCIATIVE_RECALL = AssociativeRecall()


def _is_generator(entry: object) -> bool:
    return (
        hasattr(entry, "info") and hasattr(entry, "params_model") and callable(getattr(entry, "layout", None))
    )


GENERATORS: Registry[Generator] = Registry("generator", "generators", check=_is_generator)


def get_generator(name: str) -> Generator:
    """The registered generator called `name` (UnknownNameError with suggestions otherwise)."""
    return GENERATORS.get(name)
