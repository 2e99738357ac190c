"""The zoo's seeded synthetic corpus: small-vocabulary stories and associative-recall drills.

Two document types, drawn from one `random.Random` per stream (no global state, no numpy), so a
seed gives a byte-identical corpus on every machine and Python version:

- Stories (about 70%): a TinyStories-like grammar over a few hundred words. Two or three
  characters are introduced with facts ("Mia has a red kite.", "Mia has a dog.", "Mia lives near
  the lake."); later sentences restate those facts ("Mia's kite is red.") after filler events,
  so a model that tracks the earlier statement predicts the later word, and one that does not
  can only guess among the colours.
- Associative recall (about 30%, MQAR as in Zoology, Arora et al. 2023): lines of key-value
  pairs "k1 v1 k2 v2 ... kn vn ." followed by as many queries (keys drawn with replacement, each
  followed by its value), 2-16 pairs per line. Keys (ending in "x") and values (ending in "z")
  come from two disjoint sets of 64 words that no story uses.

A word of this corpus is what `words()` splits out: a run of letters, "'s", or one of ". , ?".
`VOCABULARY` lists every word the grammar can emit.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MQAR_KEYS",
    "MQAR_VALUES",
    "VOCABULARY",
    "Character",
    "Fact",
    "alternatives",
    "corpus_text",
    "facts_of",
    "heldout_documents",
    "introduction",
    "main",
    "mqar_document",
    "mqar_line",
    "mqar_pairs",
    "new_character",
    "story",
    "story_sentences",
    "training_documents",
    "words",
]

MQAR_SHARE = 0.3  # fraction of documents that are associative-recall drills
MIN_WORDS, MAX_WORDS = 150, 250  # target length of a document, in words
MIN_PAIRS, MAX_PAIRS = 2, 16  # key-value pairs per associative-recall line
_HELDOUT_SALT = 0x5EED_4E1D  # the held-out stream's rng: seed XOR salt, never equal to a training seed

_WORD = re.compile(r"'s|[A-Za-z]+|[.,?]")
_A_BEFORE_VOWEL = re.compile(r"\b([Aa]) (?=[aeiou])")

GIRLS = ("Mia", "Lily", "Emma", "Anna", "Sara", "Zoe", "Ella", "Lucy", "Ruby", "Nora", "Ivy", "Amy")
BOYS = ("Tom", "Ben", "Sam", "Leo", "Max", "Jack", "Tim", "Dan", "Finn", "Noah", "Luke", "Adam")
COLOURS = ("red", "blue", "green", "yellow", "pink", "purple", "orange", "brown", "black", "white")
OBJECTS = ("kite", "ball", "hat", "car", "boat", "cup", "bike", "book", "bag", "drum", "coat")
PETS = ("dog", "cat", "bird", "fish", "frog", "duck", "rabbit", "turtle", "mouse", "pony")
PLACES = ("lake", "park", "farm", "forest", "river", "hill", "beach", "school", "garden", "town")
SIZES = ("little", "big", "small", "old", "new")

# MQAR words: consonant-vowel-x keys and consonant-vowel-z values. No story word ends in x or z.
MQAR_KEYS: tuple[str, ...] = tuple(c + v + "x" for c in "bdfghklmnprstvw" for v in "aeiou")[:64]
MQAR_VALUES: tuple[str, ...] = tuple(c + v + "z" for c in "bdfghklmnprstvw" for v in "aeiou")[:64]

# Body sentences. Slots: {name} {other} {pronoun} {Pronoun} {possessive} {place} {pet} {colour}
# {object} {size}. A slot never starts a sentence except {name}, {other} and {Pronoun}.
EVENTS = (
    "One day, {name} went to the {place}.",
    "{name} and {other} played all day.",
    "The sun was warm and the sky was {sky}.",
    "{Pronoun} ran fast and laughed.",
    "{name} saw a {size} {pet} by the {place}.",
    "{Pronoun} was very happy.",
    "{name} wanted to play with {other}.",
    "They sat under a tree and ate an apple.",
    "{other} said hello to {name}.",
    "{name} found a {size} stone near the {place}.",
    "It started to rain, so they went inside.",
    "{Pronoun} sang a song with {other}.",
    "Then {name} felt sleepy and took a nap.",
    "{other} gave {name} a big hug.",
    "The wind was soft and the birds sang.",
    "{name} helped {other} find a lost shoe.",
    "After lunch, {name} and {other} went for a walk.",
    "{Pronoun} liked to jump and run.",
    "{name} drew a picture of a {colour} flower.",
    "They were good friends.",
    "{name} was a little sad, but then {pronoun} smiled.",
    "Mom made soup for dinner.",
)
SKIES = ("blue", "grey", "clear")

# How a fact is first stated, and how it is restated later (the restated word is the last one).
_OBJECT_STATE = "{name} has a {colour} {object}."
_OBJECT_RECALL = (
    "{name}'s {object} is {colour}.",
    "{name} looked at {possessive} {object}. It was {colour}.",
    "What colour is {name}'s {object}? It is {colour}.",
    "{name} picked up the {object}. The {object} was {colour}.",
)
_PET_STATE = "{name} has a {pet}."
_PET_RECALL = (
    "{name}'s pet is a {pet}.",
    "{name} played with {possessive} {pet}.",
    "{name} gave food to the {pet}.",
)
_PLACE_STATE = "{name} lives near the {place}."
_PLACE_RECALL = (
    "{name} went home to the {place}.",
    "{name}'s home is near the {place}.",
    "{name} walked back to the {place}.",
)
_STATE = {"object": _OBJECT_STATE, "pet": _PET_STATE, "place": _PLACE_STATE}
_RECALL = {"object": _OBJECT_RECALL, "pet": _PET_RECALL, "place": _PLACE_RECALL}
_INTRO = ("Once upon a time, there was a {kind} named {name}.", "There was a {kind} named {name}.")
_ENDINGS = ("The end.", "It was a good day.", "They went to bed happy.")


@dataclass(frozen=True)
class Fact:
    """One fact a story states about a character: `statement`, and the question whose answer is
    `answer` (the last word of the restatement, as in "Mia's kite is" -> "red")."""

    name: str
    attribute: str  # "object", "pet" or "place"
    statement: str
    prompt: str
    answer: str


@dataclass(frozen=True)
class Character:
    """A story's character and the three facts it can state about them."""

    name: str
    girl: bool
    colour: str
    object: str
    pet: str
    place: str

    def slots(self) -> dict[str, str]:
        return {
            "name": self.name,
            "pronoun": "she" if self.girl else "he",
            "Pronoun": "She" if self.girl else "He",
            "possessive": "her" if self.girl else "his",
            "colour": self.colour,
            "object": self.object,
            "pet": self.pet,
            "place": self.place,
        }


def words(text: str) -> list[str]:
    """The corpus's words of `text`: runs of letters, "'s", and the punctuation . , ?"""
    return _WORD.findall(text)


def new_character(rng: random.Random, taken: set[str]) -> Character:
    """A character whose name is not in `taken` (which it joins), with drawn attributes."""
    girl = rng.random() < 0.5
    name = rng.choice([n for n in (GIRLS if girl else BOYS) if n not in taken])
    taken.add(name)
    return Character(
        name, girl, rng.choice(COLOURS), rng.choice(OBJECTS), rng.choice(PETS), rng.choice(PLACES)
    )


def facts_of(character: Character) -> tuple[Fact, ...]:
    """The three facts a story states about `character`, with their canonical question."""
    s = character.slots()
    return (
        Fact(
            s["name"],
            "object",
            _articles(_OBJECT_STATE.format(**s)),
            f"{s['name']}'s {s['object']} is",
            s["colour"],
        ),
        Fact(s["name"], "pet", _PET_STATE.format(**s), f"{s['name']}'s pet is a", s["pet"]),
        Fact(s["name"], "place", _PLACE_STATE.format(**s), f"{s['name']}'s home is near the", s["place"]),
    )


def alternatives(fact: Fact) -> tuple[str, ...]:
    """The values `fact.answer` could have taken instead (wrong answers of its type), in a fixed order."""
    pool = {"object": COLOURS, "pet": PETS, "place": PLACES}[fact.attribute]
    return tuple(value for value in pool if value != fact.answer)


def story(rng: random.Random, target_words: int, *, exclude_names: Sequence[str] = ()) -> str:
    """A story of about `target_words` words whose later sentences restate its early facts.

    Characters never take a name in `exclude_names` (the recall generator keeps its needle's name
    out of the haystack this way).
    """
    return " ".join(story_sentences(rng, target_words, exclude_names=exclude_names))


def story_sentences(rng: random.Random, target_words: int, *, exclude_names: Sequence[str] = ()) -> list[str]:
    """The sentences of `story` (the same draws: joined by spaces they are the story)."""
    taken = set(exclude_names)
    cast = [new_character(rng, taken) for _ in range(rng.choice((2, 2, 3)))]
    sentences: list[str] = []
    stated: list[tuple[Character, str]] = []
    for person in cast:
        sentences.append(introduction(rng, person))
        order = ["object", "pet", "place"]
        rng.shuffle(order)
        for attribute in order[: rng.choice((2, 3, 3))]:
            sentences.append(_STATE[attribute].format(**person.slots()))
            stated.append((person, attribute))
    count = sum(len(words(x)) for x in sentences)
    since_recall = 0
    while count < target_words:
        # restate a fact once some filler has passed since the last restatement
        if since_recall >= 2 and rng.random() < 0.3:
            sentence = _recall(rng, *rng.choice(stated))
            since_recall = 0
        else:
            person = rng.choice(cast)
            other = rng.choice([c for c in cast if c is not person])
            slots = person.slots() | {
                "other": other.name,
                "place": rng.choice(PLACES),
                "pet": rng.choice(PETS),
                "colour": rng.choice(COLOURS),
                "size": rng.choice(SIZES),
                "sky": rng.choice(SKIES),
            }
            sentence = rng.choice(EVENTS).format(**slots)
            since_recall += 1
        sentences.append(sentence)
        count += len(words(sentence))
    sentences.append(_recall(rng, *rng.choice(stated)))
    sentences.append(rng.choice(_ENDINGS))
    return [_articles(sentence) for sentence in sentences]


def introduction(rng: random.Random, person: Character) -> str:
    """ "There was a girl named Mia." (or the "Once upon a time" form)."""
    return rng.choice(_INTRO).format(kind="girl" if person.girl else "boy", **person.slots())


def _articles(text: str) -> str:
    """ "a orange kite" -> "an orange kite"."""
    return _A_BEFORE_VOWEL.sub(r"\1n ", text)


def _recall(rng: random.Random, person: Character, attribute: str) -> str:
    return rng.choice(_RECALL[attribute]).format(**person.slots())


def mqar_pairs(rng: random.Random, pairs: int) -> list[tuple[str, str]]:
    """`pairs` distinct keys, each with a distinct value."""
    if not 1 <= pairs <= len(MQAR_KEYS):
        raise ValueError(f"pairs must be in [1, {len(MQAR_KEYS)}], got {pairs}")
    return list(zip(rng.sample(MQAR_KEYS, pairs), rng.sample(MQAR_VALUES, pairs), strict=True))


def mqar_line(rng: random.Random, pairs: int) -> str:
    """One drill: "k1 v1 ... kn vn ." then `pairs` queried keys with their values, then ".".

    Queries are drawn with replacement, so the value of a late query cannot be inferred by
    elimination: only the association stated in the pairs block answers it.
    """
    kv = mqar_pairs(rng, pairs)
    queries = [rng.choice(kv) for _ in range(pairs)]
    return " ".join([*(f"{k} {v}" for k, v in kv), ".", *(f"{k} {v}" for k, v in queries), "."])


def mqar_document(rng: random.Random, target_words: int) -> str:
    """Drills of 2-16 pairs, one per line, until the document reaches `target_words` words."""
    lines: list[str] = []
    count = 0
    while count < target_words:
        line = mqar_line(rng, rng.randint(MIN_PAIRS, MAX_PAIRS))
        lines.append(line)
        count += len(words(line))
    return "\n".join(lines)


def _documents(rng: random.Random, count: int) -> list[str]:
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    documents = []
    for _ in range(count):
        target = rng.randint(MIN_WORDS, MAX_WORDS)
        if rng.random() < MQAR_SHARE:
            documents.append(mqar_document(rng, target))
        else:
            documents.append(story(rng, target))
    return documents


def training_documents(seed: int, count: int) -> list[str]:
    """`count` documents of the training stream of `seed` (same seed, same list, byte for byte)."""
    return _documents(random.Random(seed), count)


def heldout_documents(seed: int, count: int) -> list[str]:
    """`count` documents from a stream disjoint from `training_documents(seed, ...)`."""
    return _documents(random.Random(f"heldout:{seed ^ _HELDOUT_SALT}"), count)


def corpus_text(seed: int, count: int) -> str:
    """The training documents joined by blank lines (what a tokenizer is trained on)."""
    return "\n\n".join(training_documents(seed, count))


def _vocabulary() -> tuple[str, ...]:
    templates = [*EVENTS, *_STATE.values(), *_OBJECT_RECALL, *_PET_RECALL, *_PLACE_RECALL, *_INTRO, *_ENDINGS]
    fillers = [*GIRLS, *BOYS, *COLOURS, *OBJECTS, *PETS, *PLACES, *SIZES, *SKIES, "girl", "boy"]
    fillers += ["she", "he", "She", "He", "her", "his", "an", *MQAR_KEYS, *MQAR_VALUES, "."]
    found = set(fillers)
    for template in templates:
        found.update(words(re.sub(r"\{\w+\}", " ", template)))
    return tuple(sorted(found))


VOCABULARY: tuple[str, ...] = _vocabulary()


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m evalkit.zoo.corpus --seed S --count N --out FILE`: one {"text": ...} per line."""
    parser = argparse.ArgumentParser(prog="python -m evalkit.zoo.corpus", description=main.__doc__)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="jsonl file to write")
    parser.add_argument("--heldout", action="store_true", help="write the held-out stream instead")
    args = parser.parse_args(argv)
    if args.count < 0:
        parser.error(f"--count must be >= 0, got {args.count}")
    documents = (heldout_documents if args.heldout else training_documents)(args.seed, args.count)
    with args.out.open("w", encoding="utf-8") as out:
        for text in documents:
            out.write(json.dumps({"text": text}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
