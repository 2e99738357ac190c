"""Fit a layout's filler to a token budget in the model's own tokenizer.

The fitter looks for the most whole filler units whose prompt stays within the target, then tops up
with words of the next unit. Token counts grow almost linearly with the filler, so it guesses by
linear interpolation (or extrapolation) between counts it has measured, falling back to bisection
when guesses stop halving the interval: a handful of tokenizer calls, O(log n) at worst. A `hint`
(the units chosen for a neighbouring depth of the same sample) is tried first. The answer is the
largest amount within the target, so it does not depend on the hint or on the search path. It never
exceeds the target: every returned count has been measured.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from evalkit.longcontext._types import CountTokens, FitError, Fitted, HaystackExhausted, Layout, Rendered

_FIRST_STEP = 8  # units tried first when neither a hint nor a rate is known (doubles while under)
_MAX_STEPS = 200  # a search needs ~log2(n) steps; more means the counts are not monotone
_ALL_WORDS = 1 << 30  # asks a layout for a whole next unit's words but one (it caps partial_words)


def tolerance_for(nominal_length: int) -> int:
    """How many tokens short of its target a fitted prompt may land."""
    return max(8, nominal_length // 100)


def fit(
    layout: Layout, count: CountTokens, target_tokens: int, *, tolerance: int, hint: int | None = None
) -> Fitted:
    """The rendering of `layout` with the most filler whose `count` is at most `target_tokens`.

    Raises FitError when the fixed parts alone exceed the target, when the haystack runs out more
    than `tolerance` tokens short, or when the closest fit is still more than `tolerance` short.
    """
    measured: dict[tuple[int, int], tuple[Rendered, int]] = {}
    available: list[int] = []

    def measure(units: int, partial: int = 0) -> int | None:
        """The count at (units, partial), or None when the haystack has too few units."""
        if (units, partial) not in measured:
            try:
                rendered = layout.render(units, partial)
            except HaystackExhausted as exc:
                available.append(exc.available)
                return None
            measured[(units, rendered.partial_words)] = measured[(units, partial)] = (
                rendered,
                count(rendered),
            )
        return measured[(units, partial)][1]

    base = measure(0)
    if base is None:
        raise FitError("the haystack holds no filler units")
    if base > target_tokens:
        raise FitError(
            f"the fixed parts of the prompt take {base} tokens, more than the {target_tokens} available",
            fixed_tokens=base,
        )

    limit = layout.max_units
    hi = None if limit is None else limit + 1
    units, reached = _largest(measure, target_tokens, 0, base, hi, None, hint)

    best = measured[(units, 0)]
    if (
        reached < target_tokens
        and (limit is None or units < limit)
        and measure(units, _ALL_WORDS) is not None
    ):
        rendered, top = measured[(units, _ALL_WORDS)]
        most = rendered.partial_words
        if top <= target_tokens:
            best = measured[(units, most)]
        elif most > 1:
            words, _ = _largest(lambda p: measure(units, p), target_tokens, 0, reached, most, top, None)
            best = measured[(units, words)]
    rendered, tokens = best

    short = target_tokens - tokens
    if short > tolerance:
        if (limit is not None and units >= limit) or (available and units >= min(available)):
            have = limit if limit is not None else min(available)
            raise FitError(
                f"the haystack ran out: all {have} of its units give {tokens} tokens, {short} short of the "
                f"{target_tokens} wanted (tolerance {tolerance})"
            )
        raise FitError(
            f"the closest fit ({units} units + {rendered.partial_words} words) has {tokens} tokens, "
            f"{short} short of the {target_tokens} wanted (tolerance {tolerance})"
        )
    return Fitted(rendered, tokens, target_tokens)


def _largest(
    measure: Callable[[int], int | None],
    target: int,
    lo: int,
    at_lo: int,
    hi: int | None,
    at_hi: int | None,
    guess: int | None,
) -> tuple[int, int]:
    """The largest x with measure(x) <= target and its count, given measure(lo) = at_lo <= target
    and, when `hi` is set, measure(hi) > target (`at_hi` None: unknown, e.g. the haystack ran out).
    measure() returning None counts as over the target."""
    origin, at_origin = lo, at_lo
    under = 0  # guesses in a row that stayed within the target before any upper bound was known
    slow = 0  # bracketed guesses in a row that did not halve the interval
    for _ in range(_MAX_STEPS):
        if hi is not None and hi - lo <= 1:
            return lo, at_lo
        if guess is None:
            if hi is not None and at_hi is not None and at_hi > at_lo:
                if slow >= 2:
                    guess, slow = (lo + hi) // 2, 0
                else:
                    guess = lo + math.floor((target - at_lo) * (hi - lo) / (at_hi - at_lo))
            elif lo > origin and at_lo > at_origin:
                rate = (at_lo - at_origin) / (lo - origin)
                guess = max(lo + math.ceil((target - at_lo) / rate), lo + 2**under - 1)
            else:
                guess = lo + _FIRST_STEP * 2**under
        x = max(lo + 1, guess) if hi is None else min(max(lo + 1, guess), hi - 1)
        guess = None
        width = None if hi is None else hi - lo
        tokens = measure(x)
        if tokens is not None and tokens <= target:
            lo, at_lo = x, tokens
            under += 1
        else:
            hi, at_hi = x, tokens
            under = 0
        if width is not None and hi is not None:
            slow = slow + 1 if (hi - lo) * 2 > width else 0
    raise FitError(f"the token count did not settle after {_MAX_STEPS} tries; is it monotone in the filler?")
