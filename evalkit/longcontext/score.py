"""RULER-compatible scores of one probe, and the grid summaries (effective context length).

Scores are on RULER's 0–100 scale here; the run record's metrics store them as fractions.
- all:    the share of references found in the output (RULER's string_match_all), × 100;
- any:    100 if at least one reference is found (string_match_any);
- strict: found / (references + distractors named), × 100 — an output that lists every value in
          the context scores 100 under `all` but is penalised here;
- ll:     loglikelihood mode: the share of references whose log-probability beats every distractor's.
Matching is case-insensitive substring search, as in RULER.
"""

from __future__ import annotations

from collections.abc import Sequence

from evalkit.longcontext._types import Probe


def generation_scores(probe: Probe, output: str) -> dict[str, float]:
    text = output.lower()
    found = sum(1 for ref in probe.answers if ref.lower() in text)
    extra = sum(1 for wrong in probe.distractors if wrong.lower() in text)
    total = len(probe.answers)
    return {
        "ruler_all": 100.0 * found / total,
        "ruler_any": 100.0 if found else 0.0,
        "strict": 100.0 * found / (total + extra),
    }


def ranking_score(answer_logprobs: Sequence[float], distractor_logprobs: Sequence[float]) -> float:
    """100 × the share of answers that outscore the best distractor (ties count as misses)."""
    best_wrong = max(distractor_logprobs, default=float("-inf"))
    wins = sum(1 for value in answer_logprobs if value > best_wrong)
    return 100.0 * wins / len(answer_logprobs)


def row_average(scores: Sequence[Sequence[float | None]], column: int) -> float | None:
    """The mean over rows of one length's column, ignoring cells that did not run."""
    values = [row[column] for row in scores if row[column] is not None]
    return sum(values) / len(values) if values else None  # type: ignore[arg-type]


def effective_context_length(
    lengths: Sequence[int], averages: Sequence[float | None], threshold: float
) -> int | None:
    """RULER: the largest tested length whose average score is above `threshold` (None if none is)."""
    passing = [
        length
        for length, score in zip(lengths, averages, strict=True)
        if score is not None and score > threshold
    ]
    return max(passing, default=None)


def relative_effective_length(
    lengths: Sequence[int], averages: Sequence[float | None], fraction: float
) -> int | None:
    """The largest tested length scoring at least `fraction` of the model's own shortest-length score.

    Measures how far a model keeps what it can do at all, whatever its absolute level; None when the
    shortest length did not run or scored 0 (there is nothing to keep).
    """
    base = next((score for score in averages if score is not None), None)
    if base is None or base <= 0:
        return None
    passing = [
        length
        for length, score in zip(lengths, averages, strict=True)
        if score is not None and score >= fraction * base
    ]
    return max(passing, default=None)
