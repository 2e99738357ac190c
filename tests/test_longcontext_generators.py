"""Long-context generators, haystacks and the length fitter: determinism, placement, answers, fitting."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from evalkit.backends.fake import ByteTokenizer
from evalkit.errors import UnknownNameError
from evalkit.longcontext._types import FitError, HaystackExhausted, Layout, Rendered
from evalkit.longcontext.fit import fit, tolerance_for
from evalkit.longcontext.generators import GENERATORS, get_generator
from evalkit.longcontext.haystack import (
    FileHaystack,
    HaystackError,
    NoiseHaystack,
    ProseHaystack,
    make_haystack,
    split_sentences,
)

NEEDLE_GENERATORS = ["passkey", "niah", "variable_tracking", "associative_recall"]
WORD_GENERATORS = ["common_words", "frequent_words"]
ESSAY = (
    "Ships sailed at dawn. The harbour was quiet!\n\nA gull cried twice? Nobody answered.\n"
    "The tide came in slowly, and the boats rose with it. Evening fell."
)


def layout_of(name: str, haystack: Any = None, seed: int = 7, depth: float = 0.5, **params: Any) -> Layout:
    generator = get_generator(name)
    model = generator.params_model(**params)
    return generator.layout(model, haystack, seed=seed, depth=depth if generator.info.uses_depth else None)


def counter(tokenizer: Any) -> Callable[[Rendered], int]:
    def count(r: Rendered) -> int:
        return max(
            len(tokenizer.encode(f"{r.instruction}\n\n{r.context}\n\n{p.question} {p.answer_prefix}"))
            for p in r.probes
        )

    return count


def digest(rendered: Rendered) -> str:
    return hashlib.sha256(repr(rendered).encode("utf-8")).hexdigest()


def without_targets(rendered: Rendered) -> str:
    text = rendered.context
    for start, end in sorted(rendered.needle_spans, reverse=True):
        text = text[:start] + text[end:]
    return " ".join(text.split())


@pytest.fixture(scope="module")
def bpe() -> Any:
    pytest.importorskip("tokenizers")
    from tests.conftest_hf import build_tokenizer

    return build_tokenizer()


# --- haystacks ----------------------------------------------------------------------------------


def test_noise_and_prose_are_prefix_stable_and_seeded() -> None:
    noise = make_haystack("noise", None)
    assert noise.identity == "noise" and noise.max_units() is None
    assert len(set(noise.units(1, 5))) == 1
    prose = make_haystack("prose", None)
    assert prose.identity == "prose-v1"
    long = prose.units(3, 80)
    other = ProseHaystack()
    other.units(99, 10)  # another seed first: streams are per seed
    assert other.units(3, 50) == long[:50]
    assert prose.units(3, 120)[:80] == long
    assert prose.units(4, 80) != long
    assert len(set(long)) > 70


def test_prose_has_nothing_that_looks_like_a_needle() -> None:
    text = " ".join(ProseHaystack().units(11, 2000))
    assert not re.search(r"[0-9\-]|magic|pass key|VAR ", text)


def test_file_haystack_splits_in_order_and_is_finite(tmp_path: Path) -> None:
    (tmp_path / "essay.txt").write_text(ESSAY, encoding="utf-8")
    haystack = make_haystack("essay.txt", tmp_path)
    assert isinstance(haystack, FileHaystack)
    units = haystack.units(0, 6)
    assert units == [
        "Ships sailed at dawn.",
        "The harbour was quiet!",
        "A gull cried twice?",
        "Nobody answered.",
        "The tide came in slowly, and the boats rose with it.",
        "Evening fell.",
    ]
    assert haystack.units(123, 3) == units[:3]  # the seed is ignored; prefix-stable
    assert haystack.max_units() == 6
    assert re.fullmatch(r"file:essay\.txt:[0-9a-f]{16}", haystack.identity)
    with pytest.raises(HaystackExhausted) as info:
        haystack.units(0, 7)
    assert info.value.available == 6
    assert make_haystack(str(tmp_path / "essay.txt"), None).identity == haystack.identity


def test_split_sentences_normalises_whitespace() -> None:
    assert split_sentences('He said "stop." Then   he\nleft.\n\n\nEnd') == [
        'He said "stop."',
        "Then he left.",
        "End",
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "does not exist"), ("", "is empty"), ("  \n\n ", "is empty"), ("... !!", "no sentences")],
)
def test_bad_haystack_files(tmp_path: Path, content: str | None, message: str) -> None:
    if content is not None:
        (tmp_path / "h.txt").write_text(content, encoding="utf-8")
    with pytest.raises(HaystackError, match=message) as info:
        make_haystack("h.txt", tmp_path)
    assert "h.txt" in str(info.value)


def test_non_utf8_and_folder_haystacks(tmp_path: Path) -> None:
    (tmp_path / "latin.txt").write_bytes("caf\xe9. ok.".encode("latin-1"))
    with pytest.raises(HaystackError, match="UTF-8"):
        make_haystack("latin.txt", tmp_path)
    with pytest.raises(HaystackError, match="folder"):
        make_haystack(".", tmp_path)


# --- registry and parameters --------------------------------------------------------------------


def test_registry_names_and_unknown_generator() -> None:
    # plus zoo_recall, the zoo's own needle (evalkit/zoo/generators.py, tests/test_zoo_corpus.py)
    assert set(GENERATORS) == set(NEEDLE_GENERATORS + WORD_GENERATORS) | {"zoo_recall"}
    with pytest.raises(UnknownNameError, match="niah"):
        get_generator("nia")
    for name in WORD_GENERATORS:
        info = get_generator(name).info
        assert not info.uses_depth and not info.uses_haystack
    assert tuple(get_generator("associative_recall").info.sweepable) == ("pairs",)


def test_parameters_are_checked() -> None:
    niah = get_generator("niah").params_model
    with pytest.raises(ValidationError, match="queries"):
        niah(keys=2, queries=3)
    with pytest.raises(ValidationError):
        niah(needles=3)
    swept = niah().model_copy(update={"queries": 4})  # a sweep's copy skips validation; layout re-checks
    with pytest.raises(ValidationError):
        get_generator("niah").layout(swept, None, seed=1, depth=0.5)
    with pytest.raises(ValidationError, match="common_repeats"):
        get_generator("common_words").params_model(common_repeats=3, uncommon_repeats=3)
    with pytest.raises(ValueError, match="depth"):
        get_generator("passkey").layout(get_generator("passkey").params_model(), None, seed=1, depth=None)


# --- determinism and depth ----------------------------------------------------------------------

_SNIPPET = """
import hashlib
from evalkit.longcontext.generators import GENERATORS
from evalkit.longcontext.haystack import make_haystack
h = hashlib.sha256()
for name, g in sorted(GENERATORS.items()):
    layout = g.layout(g.params_model(), make_haystack("prose", None), seed=42,
                      depth=0.25 if g.info.uses_depth else None)
    h.update(repr(layout.render(40, 3)).encode("utf-8"))
print(h.hexdigest())
"""


def test_same_seed_same_bytes_across_processes() -> None:
    expected = hashlib.sha256()
    for _name, g in sorted(GENERATORS.items()):
        layout = g.layout(
            g.params_model(), ProseHaystack(), seed=42, depth=0.25 if g.info.uses_depth else None
        )
        expected.update(repr(layout.render(40, 3)).encode("utf-8"))
    outputs = {
        subprocess.run(
            [sys.executable, "-c", _SNIPPET],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": salt},
        ).stdout.strip()
        for salt in ("1", "2")
    }
    assert outputs == {expected.hexdigest()}


@pytest.mark.parametrize("name", NEEDLE_GENERATORS + WORD_GENERATORS)
def test_seeds_differ(name: str) -> None:
    first = layout_of(name, ProseHaystack(), seed=1).render(30, 2)
    again = layout_of(name, ProseHaystack(), seed=1).render(30, 2)
    other = layout_of(name, ProseHaystack(), seed=2).render(30, 2)
    assert first == again
    assert first.context != other.context and first.probes != other.probes


@pytest.mark.parametrize("name", NEEDLE_GENERATORS)
@pytest.mark.parametrize("haystack", ["noise", "prose"])
def test_depth_moves_only_the_target_needles(name: str, haystack: str) -> None:
    params = {"niah": {"keys": 4, "values": 2, "queries": 2}, "variable_tracking": {"chains": 3}}.get(
        name, {}
    )
    renders = [
        layout_of(name, make_haystack(haystack, None), seed=5, depth=d, **params).render(60, 4)
        for d in (0.0, 0.3, 1.0)
    ]
    outside = {without_targets(r) for r in renders}
    if name == "associative_recall":  # the whole block of pairs sits at the depth
        outside = {" ".join(re.sub(r"The value of key \S+ is \S+\.", "", t).split()) for t in outside}
    assert len(outside) == 1
    assert len({r.probes for r in renders}) == 1
    assert len({tuple(r.context[a:b] for a, b in r.needle_spans) for r in renders}) == 1
    starts = [min(a for a, _ in r.needle_spans) for r in renders]
    if name == "associative_recall":
        starts = [r.context.index("The value of key") for r in renders]
    assert starts[0] < starts[1] < starts[2]
    # everything before the shallower needle is shared
    assert renders[1].context[: starts[1]] == renders[2].context[: starts[1]]


def test_needle_positions_and_partial_words() -> None:
    layout = layout_of("passkey", NoiseHaystack(), depth=0.5)
    r = layout.render(10)
    sentence = NoiseHaystack().units(0, 1)[0]
    (span,) = r.needle_spans
    assert r.context[: span[0]] == (sentence + " ") * 5
    end = layout_of("passkey", NoiseHaystack(), depth=1.0).render(4, 3)
    words = sentence.split()
    assert end.context.endswith(end.context[slice(*end.needle_spans[0])] + " " + " ".join(words[:3]))
    assert end.partial_words == 3
    capped = layout.render(2, 10_000)
    assert capped.partial_words == len(words) - 1


# --- answers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NEEDLE_GENERATORS)
def test_answers_are_in_the_target_needles(name: str) -> None:
    r = layout_of(name, ProseHaystack()).render(50)
    needles = " ".join(r.context[a:b] for a, b in r.needle_spans)
    for probe in r.probes:
        assert probe.answers and all(a in needles for a in probe.answers)
        assert not set(probe.answers) & set(probe.distractors)
        assert probe.answer_prefix and probe.question.endswith("." if name == "variable_tracking" else "?")


@pytest.mark.parametrize("kind", ["words", "numbers", "uuids"])
def test_niah_multi_key_value_query(kind: str) -> None:
    layout = layout_of("niah", ProseHaystack(), keys=40, values=3, queries=5, key_type=kind, value_type=kind)
    r = layout.render(100)
    (probe,) = r.probes
    needles = re.findall(r"One of the special magic \w+ for (\S+) is: (\S+)\.", r.context)
    assert len(needles) == 120
    keys = [k for k, _ in needles]
    values = [v for _, v in needles]
    assert len(set(keys)) == 40 and len(set(values)) == 120 and not set(keys) & set(values)
    assert len(probe.answers) == 15 and len(r.needle_spans) == 15
    assert set(probe.distractors[:105]) == set(values) - set(probe.answers)  # in-context distractors first
    assert len(probe.distractors) == 105 + 4 and not set(probe.distractors[105:]) & set(values)
    asked = {k for k, v in needles if v in probe.answers}
    assert len(asked) == 5 and all(k in probe.question and k in probe.answer_prefix for k in asked)
    if kind == "uuids":
        assert all(
            re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", v)
            for v in values
        )


def test_variable_tracking_chains_resolve() -> None:
    r = layout_of("variable_tracking", ProseHaystack(), hops=5, chains=3, depth=0.2).render(80)
    (probe,) = r.probes
    assigned = dict(re.findall(r"VAR ([A-Z]{5}) = ((?:VAR [A-Z]{5})|\d+)\.", r.context))
    assert len(assigned) == 18

    def resolve(name: str) -> str:
        source = assigned[name]
        return resolve(source[4:]) if source.startswith("VAR ") else source

    value = re.search(r"value (\d+)", probe.question)
    assert value is not None
    holders = {name for name in assigned if resolve(name) == value.group(1)}
    assert holders == set(probe.answers) and len(probe.answers) == 6
    assert f"{len(probe.answers)} variables" in probe.answer_prefix
    assert set(probe.distractors[:12]) == set(assigned) - holders
    # statements of every chain come in order
    for chain in (probe.answers, probe.distractors[:6], probe.distractors[6:12]):
        places = [r.context.index(f"VAR {name} =") for name in chain]
        assert places == sorted(places)


def test_associative_recall_probes() -> None:
    r = layout_of("associative_recall", ProseHaystack(), pairs=30, queries=6, depth=0.4).render(40)
    pairs = dict(re.findall(r"The value of key (\S+) is (\S+)\.", r.context))
    assert len(pairs) == 30 and len(set(pairs.values())) == 30
    assert len(r.probes) == 6 and len(r.needle_spans) == 6
    assert len({p.question for p in r.probes}) == 6
    for probe in r.probes:
        key = re.search(r"key (\S+)\?", probe.question)
        assert key is not None and probe.answers == (pairs[key.group(1)],)
        assert set(probe.distractors[:29]) == set(pairs.values()) - set(probe.answers)
    # the block of pairs is contiguous
    block = re.search(r"(The value of key \S+ is \S+\. ?){30}", r.context)
    assert block is not None


def _cwe_counts(context: str) -> Counter[str]:
    items = re.findall(r"(\d+)\. (\S+)", context)
    assert [int(n) for n, _ in items] == list(range(1, len(items) + 1))
    return Counter(w for _, w in items)


@pytest.mark.parametrize(("units", "partial"), [(0, 0), (7, 2), (400, 1), (1200, 0)])
def test_common_words_answers_by_counting(units: int, partial: int) -> None:
    layout = layout_of("common_words", seed=units)
    r = layout.render(units, partial)
    counts = _cwe_counts(r.context)
    (probe,) = r.probes
    assert len(probe.answers) == 10 and all(counts[w] == 30 for w in probe.answers)
    others = [c for w, c in counts.items() if w not in probe.answers]
    assert len(others) == units + (1 if partial else 0)
    assert max(others, default=0) <= 3
    assert not set(probe.answers) & set(probe.distractors)
    assert set(probe.distractors[: min(units, 10)]) <= set(counts)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("units", [0, 1, 9, 150, 2000])
def test_frequent_words_top_is_unambiguous(alpha: float, units: int) -> None:
    r = layout_of("frequent_words", seed=units, alpha=alpha, vocabulary=200).render(units)
    counts = Counter(r.context.split())
    (probe,) = r.probes
    ranked = counts.most_common()
    assert sum(counts.values()) == units + 3
    assert {w for w, _ in ranked[:3]} == set(probe.answers)
    runner_up = ranked[3][1] if len(ranked) > 3 else 0
    assert min(counts[w] for w in probe.answers) > runner_up
    assert all(re.fullmatch(r"[a-z]{3,6}", w) for w in counts)
    assert not set(probe.answers) & set(probe.distractors)


# --- token counts grow with the filler -------------------------------------------------------------


@pytest.mark.parametrize("name", NEEDLE_GENERATORS + WORD_GENERATORS)
def test_counts_never_fall(name: str, bpe: Any) -> None:
    params = {"common_words": {"common": 3, "common_repeats": 5}}.get(name, {})
    layout = layout_of(name, ProseHaystack(), depth=0.6, **params)
    for tokenizer in (ByteTokenizer(), bpe):
        count = counter(tokenizer)
        previous = 0
        for units in range(0, 25):
            for partial in (0, 1, 2, 4, 8):
                tokens = count(layout.render(units, partial))
                assert tokens >= previous, (units, partial)
                previous = tokens
            previous = count(layout.render(units + 1))


# --- fitting ------------------------------------------------------------------------------------


def _fit_cases() -> list[tuple[str, str, dict[str, Any], int]]:
    """(generator, haystack, parameters, shortest length for the BPE tokenizer). Multi-needle tasks
    start at 512: their fixed parts alone take most of 256 tokens of the test tokenizer."""
    return [
        ("passkey", "noise", {}, 256),
        ("passkey", "prose", {"digits": 12}, 256),
        ("niah", "noise", {}, 512),
        ("niah", "prose", {"keys": 3, "values": 2, "queries": 2, "key_type": "numbers"}, 512),
        ("variable_tracking", "noise", {"hops": 1}, 512),
        ("variable_tracking", "prose", {"hops": 2, "chains": 2}, 512),
        ("associative_recall", "noise", {"pairs": 2, "queries": 1}, 256),
        ("associative_recall", "prose", {"pairs": 3, "queries": 2, "value_type": "words"}, 512),
        ("common_words", "noise", {"common": 2, "common_repeats": 4, "uncommon_repeats": 2}, 256),
        ("frequent_words", "noise", {}, 256),
    ]


def _check_fit(layout: Layout, count: Callable[[Rendered], int], length: int) -> None:
    calls: list[Rendered] = []

    def counted(r: Rendered) -> int:
        calls.append(r)
        return count(r)

    fitted = fit(layout, counted, length, tolerance=tolerance_for(length))
    r = fitted.rendered
    assert fitted.prompt_tokens == count(r) and fitted.target_tokens == length
    assert length - tolerance_for(length) <= fitted.prompt_tokens <= length
    assert count(layout.render(r.units + 1)) > length  # the most whole units
    more = layout.render(r.units, r.partial_words + 1)
    assert more.partial_words == r.partial_words or count(more) > length  # then the most words
    assert len(calls) <= 16, len(calls)


@pytest.mark.parametrize(("name", "haystack", "params", "shortest"), _fit_cases())
@pytest.mark.parametrize("tokenizer", ["bytes", "bpe"])
def test_fit_lands_within_tolerance_and_never_over(
    name: str, haystack: str, params: dict[str, Any], shortest: int, tokenizer: str, bpe: Any
) -> None:
    # A byte is a token: the instructions alone take ~150-200, so bytes start at twice the length.
    shortest *= 2 if tokenizer == "bytes" else 1
    lengths = (shortest, 1000, 4096)
    count = counter(ByteTokenizer() if tokenizer == "bytes" else bpe)
    for length in lengths:
        _check_fit(
            layout_of(name, make_haystack(haystack, None), seed=length, depth=0.35, **params), count, length
        )


@pytest.mark.parametrize("name", NEEDLE_GENERATORS + WORD_GENERATORS)
def test_fit_with_default_parameters(name: str, bpe: Any) -> None:
    for depth in (0.0, 1.0):
        _check_fit(layout_of(name, ProseHaystack(), seed=1, depth=depth), counter(bpe), 8192)


def test_hint_does_not_change_the_result(bpe: Any) -> None:
    count = counter(bpe)
    layout = layout_of("niah", ProseHaystack(), seed=3, depth=0.7)
    plain = fit(layout, count, 3000, tolerance=30)
    for hint in (0, 1, plain.rendered.units - 7, plain.rendered.units, plain.rendered.units + 3, 10_000):
        assert fit(layout, count, 3000, tolerance=30, hint=hint) == plain


def test_hint_saves_tokenizer_calls() -> None:
    count = counter(ByteTokenizer())
    calls: list[Rendered] = []

    def counted(r: Rendered) -> int:
        calls.append(r)
        return count(r)

    plain = fit(layout_of("passkey", ProseHaystack(), seed=3, depth=0.2), counted, 20_000, tolerance=200)
    cold = len(calls)
    calls.clear()
    other = layout_of("passkey", ProseHaystack(), seed=3, depth=0.8)
    warm = fit(other, counted, 20_000, tolerance=200, hint=plain.rendered.units)
    assert len(calls) <= cold and abs(warm.rendered.units - plain.rendered.units) <= 1


def test_fit_is_deterministic() -> None:
    count = counter(ByteTokenizer())
    results = {
        fit(layout_of("variable_tracking", ProseHaystack()), count, 2048, tolerance=20) for _ in range(2)
    }
    assert len(results) == 1


def test_fit_errors(tmp_path: Path) -> None:
    count = counter(ByteTokenizer())
    with pytest.raises(FitError, match=r"fixed parts of the prompt take \d+ tokens, more than the 1000"):
        fit(layout_of("common_words"), count, 1000, tolerance=10)
    (tmp_path / "short.txt").write_text(ESSAY, encoding="utf-8")
    short = layout_of("passkey", make_haystack("short.txt", tmp_path))
    with pytest.raises(FitError, match=r"ran out: all 6 of its units give \d+ tokens"):
        fit(short, count, 4096, tolerance=40)
    with pytest.raises(HaystackExhausted):
        short.render(6, 1)
    assert short.max_units == 6 and short.render(6).units == 6
    fitted = fit(short, count, 600, tolerance=600)  # the whole file fits, and it is within tolerance
    assert fitted.rendered.units == 6 and fitted.prompt_tokens <= 600

    class Coarse:
        """Units of 100 tokens with no words to top up with: 50 tokens short of most targets."""

        max_units = None

        def render(self, units: int, partial_words: int = 0) -> Rendered:
            return Rendered("", "x" * (100 * units), (), (), units, 0)

    with pytest.raises(FitError, match="short of the 1050"):
        fit(Coarse(), lambda r: len(r.context), 1050, tolerance=10)
    assert fit(Coarse(), lambda r: len(r.context), 1050, tolerance=50).rendered.units == 10


def test_tolerance_for() -> None:
    assert tolerance_for(256) == 8 and tolerance_for(4096) == 40 and tolerance_for(131072) == 1310


def test_word_lists_are_plain_lowercase_words() -> None:
    from evalkit.longcontext.haystack import word_list

    for name in ("nouns", "adjectives", "verbs", "adverbs", "places"):
        words = word_list(name)
        assert len(words) >= 80 and len(set(words)) == len(words)
        assert all(re.fullmatch(r"[a-z]+", w) for w in words)


def test_generator_models_are_frozen_and_strict() -> None:
    for generator in GENERATORS.values():
        model: type[BaseModel] = generator.params_model
        assert model.model_config.get("extra") == "forbid" and model.model_config.get("frozen")
        model()  # every field has a default


def test_a_haystack_must_be_a_regular_file_of_bounded_size(tmp_path: Path) -> None:
    """A FIFO used to block the run forever and /dev/zero to fill memory."""
    import os

    from evalkit.longcontext.haystack import MAX_HAYSTACK_BYTES, HaystackError, make_haystack

    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    with pytest.raises(HaystackError, match="is not a regular file"):
        make_haystack(str(fifo), None)
    with pytest.raises(HaystackError, match="is not a regular file"):
        make_haystack("/dev/zero", None)
    huge = tmp_path / "huge.txt"
    with huge.open("wb") as handle:
        handle.truncate(MAX_HAYSTACK_BYTES + 1)  # sparse: no disk used
    with pytest.raises(HaystackError, match="is larger than 64 MiB"):
        make_haystack(str(huge), None)
