"""The values that pass between the long-context generators, the length fitter and the task runner.

A generator turns (its parameters, a haystack, a seed, a depth) into a `Layout`: one sample whose
amount of filler is still open. The fitter asks the layout to `render` itself with more or fewer
filler units until the fully assembled prompt lands just under the target length in the model's own
tokenizer; the runner assembles prompts, sends requests and scores the answers against the probes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Probe:
    """One question asked of a rendered context.

    `question` follows the context; `answer_prefix` is appended after any chat template, so the model
    continues it (RULER's convention). `answers` are the references: `all` scoring needs every one in
    the output, `any` needs one. `distractors` are wrong values of the same type: those shown in the
    context first (the strict score penalises an output that names one), then unseen ones generated
    for the loglikelihood mode, which ranks each answer against them.
    """

    question: str
    answer_prefix: str
    answers: tuple[str, ...]
    distractors: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rendered:
    """One sample at one amount of filler: what the model reads and what it is asked."""

    instruction: str  # before the context (e.g. "A special magic number is hidden in the text below...")
    context: str  # the haystack with its needles, or the word list of an aggregation task
    needle_spans: tuple[tuple[int, int], ...]  # [start, end) character spans of target needles in `context`
    probes: tuple[Probe, ...]  # one or more questions that share this context
    units: int  # whole filler units used
    partial_words: int  # words of the next unit added to top up


class HaystackExhausted(Exception):
    """A finite haystack (a user's text file) has fewer units than the fitter asked for."""

    def __init__(self, available: int) -> None:
        super().__init__(f"the haystack has only {available} units")
        self.available = available


class Layout(Protocol):
    """One sample before its length is fixed. `render` must be deterministic, and the prompt's token
    count must not decrease as `units` (then `partial_words`) grows."""

    @property
    def max_units(self) -> int | None:
        """How many whole units exist (None: unbounded, e.g. generated prose or the noise sentence)."""
        ...

    def render(self, units: int, partial_words: int = 0) -> Rendered:
        """Raises HaystackExhausted when `units` (+1 if partial_words) exceeds what the haystack holds."""
        ...


@dataclass(frozen=True)
class Fitted:
    """The chosen rendering and the token counts that justify it."""

    rendered: Rendered
    prompt_tokens: int  # the longest assembled prompt of the sample (over its probes)
    target_tokens: int  # nominal length minus the generation budget


class FitError(Exception):
    """No amount of filler lands within tolerance (fixed parts too long, or haystack too short).

    `fixed_tokens` is set when the parts that are not filler alone exceed the target: the length is
    too small for this sample (the runner skips such cells with the reason); otherwise None.
    """

    def __init__(self, message: str, fixed_tokens: int | None = None) -> None:
        super().__init__(message)
        self.fixed_tokens = fixed_tokens


CountTokens = Callable[[Rendered], int]  # tokens of the longest fully assembled prompt of a rendering


@dataclass(frozen=True)
class GeneratorInfo:
    """What the runner needs to know about a generator besides its parameters model."""

    name: str
    uses_depth: bool  # False for aggregation tasks (common/frequent words): their grid has one row
    uses_haystack: bool  # False when the context is made by the generator itself (word lists)
    summary: str = ""
    sweepable: Sequence[str] = field(default_factory=tuple)  # integer parameters a grid may sweep as rows
