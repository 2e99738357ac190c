"""`zoo_recall`: a fact stated once in zoo stories, asked for at the end, at and beyond training length.

The zoo models train on 256-token windows of the corpus in `evalkit.zoo.corpus`. This generator
hides one introduction and fact ("There was a girl named Mia. Mia has a red kite.") among the
sentences of other zoo stories and ends the context with the fact's question in the corpus's own
words ("Mia's kite is"), so a base model that never saw an instruction is measured on what it
learned: the answer (" red") against the other values of its type (the other colours). The
character's name never occurs in the filler, so only the needle can answer. Run on lengths
256-2048 it shows whether recall survives 2-8x the training length.
"""

from __future__ import annotations

import dataclasses
import random
import threading

from pydantic import BaseModel, ConfigDict, Field

from evalkit.longcontext._types import GeneratorInfo, Layout, Probe, Rendered  # no public re-export yet
from evalkit.longcontext.generators import Needle, NeedleLayout, checked_params
from evalkit.longcontext.haystack import Haystack
from evalkit.zoo.corpus import (
    MAX_WORDS,
    MIN_WORDS,
    Fact,
    alternatives,
    facts_of,
    introduction,
    new_character,
    story_sentences,
)

__all__ = ["ZOO_RECALL", "LeadingTopUp", "ZooRecall", "ZooRecallParams", "ZooStoryHaystack", "needle_fact"]

ATTRIBUTES = ("object", "pet", "place")


class ZooRecallParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    attribute: str = Field(
        default="any",
        pattern="^(any|object|pet|place)$",
        description="which fact: any | object | pet | place",
    )


class ZooStoryHaystack:
    """Sentences of consecutive zoo stories, none of whose characters is named in `exclude`.

    Prefix-stable: the stream of a seed is generated story by story from one seeded rng.
    """

    def __init__(self, exclude: tuple[str, ...] = ()) -> None:
        self._exclude = exclude
        self.identity = "zoo-stories-v1"
        self._streams: dict[int, tuple[random.Random, list[str]]] = {}
        self._lock = threading.Lock()

    def units(self, seed: int, count: int) -> list[str]:
        with self._lock:
            rng, made = self._streams.setdefault(seed, (random.Random(f"zoo-stories:{seed}"), []))
            while len(made) < count:
                made.extend(
                    story_sentences(rng, rng.randint(MIN_WORDS, MAX_WORDS), exclude_names=self._exclude)
                )
            return made[: max(count, 0)]

    def max_units(self) -> int | None:
        return None


class ZooRecall:
    """One character's introduction and fact at `depth` in zoo stories; its question ends the context."""

    info = GeneratorInfo(
        name="zoo_recall",
        uses_depth=True,
        uses_haystack=False,
        summary="recall a fact stated once in zoo stories (the zoo's own distribution), at any length",
    )
    params_model: type[BaseModel] = ZooRecallParams

    def layout(
        self, params: BaseModel, haystack: Haystack | None, *, seed: int, depth: float | None
    ) -> Layout:
        p = checked_params(ZooRecallParams, params)
        if depth is None or not 0.0 <= depth <= 1.0:
            raise ValueError(f"depth must be in [0, 1], got {depth!r}")
        fact, intro = needle_fact(seed, p.attribute)
        probe = Probe(
            question="", answer_prefix=fact.prompt, answers=(fact.answer,), distractors=alternatives(fact)
        )
        needle = Needle(f"{intro} {fact.statement}", depth, True)
        haystack = ZooStoryHaystack(exclude=(fact.name,))
        return LeadingTopUp(NeedleLayout(haystack, seed, "", [needle], (probe,)), haystack, seed)


class LeadingTopUp:
    """A needle layout whose top-up words go first: the last words of the next filler unit.

    The question follows the context directly, so a top-up cut mid-sentence at the end would run
    into it ("Tim lives near the Mia's kite is"); at the start it reads like a window cut from a
    longer text, which is how a model trained on packed 256-token windows sees text anyway.
    """

    def __init__(self, inner: NeedleLayout, haystack: ZooStoryHaystack, seed: int) -> None:
        self._inner = inner
        self._haystack = haystack
        self._seed = seed

    @property
    def max_units(self) -> int | None:
        return None

    def render(self, units: int, partial_words: int = 0) -> Rendered:
        rendered = self._inner.render(units, 0)
        if partial_words <= 0:
            return rendered
        words = self._haystack.units(self._seed, units + 1)[units].split()
        partial = min(partial_words, len(words) - 1)
        if partial <= 0:
            return rendered
        lead = " ".join(words[-partial:])
        shift = len(lead) + 1
        return dataclasses.replace(
            rendered,
            context=f"{lead} {rendered.context}" if rendered.context else lead,
            needle_spans=tuple((start + shift, end + shift) for start, end in rendered.needle_spans),
            partial_words=partial,
        )


def needle_fact(seed: int, attribute: str = "any") -> tuple[Fact, str]:
    """The fact a sample of `seed` hides, and the sentence introducing its character."""
    rng = random.Random(f"zoo_recall:{seed}")
    person = new_character(rng, set())
    chosen = rng.choice(ATTRIBUTES) if attribute == "any" else attribute
    fact = next(f for f in facts_of(person) if f.attribute == chosen)
    return fact, introduction(rng, person)


# The entry point `zoo_recall = "evalkit.zoo.generators:ZOO_RECALL"` (group evalkit.generators).
ZOO_RECALL = ZooRecall()
