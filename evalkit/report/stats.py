"""Honest statistics for comparing models: paired tests on shared samples, chance levels, Pareto fronts.

Two models evaluated on the same samples are *paired*: a hard question is hard for both. A paired
test uses that and detects differences that two independent standard errors would miss, so every
comparison here matches samples by ``sample_id`` first (:func:`paired_scores`) and then tests the
per-sample differences (:func:`compare_paired`):

* scores that are all 0 or 1 (accuracies) get **McNemar's exact test**: only the discordant samples
  (one model right, the other wrong) carry information; under "no difference" each discordant
  sample favours either model with probability 1/2, so the two-sided p-value is a binomial test on
  the discordant counts. Its 95% interval of the difference is Newcombe's hybrid score interval for
  paired proportions (1998, method 10): built from Wilson intervals, it stays inside [-1, 1] and
  does not collapse to a point when there are few discordant pairs, as the Wald interval does;
* any other scores (F1, partial credit) get a **paired bootstrap** with a seeded numpy generator:
  resample the per-sample differences with replacement; the 95% interval is the 2.5th–97.5th
  percentile of the resampled mean differences, and the two-sided p-value is the share of
  resampled means, re-centred on 0, at least as far from 0 as the observed mean ((k + 1) / (B + 1),
  so it is never exactly 0).

numpy and scipy are imported inside the functions that use them, so importing this module is cheap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from evalkit.errors import DataError
from evalkit.intervals import Z95, wilson_interval

if TYPE_CHECKING:
    from evalkit.results import ResultsStore, RunRecord

__all__ = [
    "ALPHA",
    "Z95",
    "PairedComparison",
    "chance_normalized",
    "compare_paired",
    "paired_scores",
    "pareto_front",
    "tie_group_ranks",
]

ALPHA = 0.05  # significance level used for ranks and verdicts
_BOOTSTRAP_CHUNK_DRAWS = 2_000_000  # indices drawn per chunk: bounds memory at ~16 MB whatever n is


@dataclass(frozen=True)
class PairedComparison:
    """The paired comparison of model B against model A on one metric."""

    metric: str
    n: int  # samples both sides share (matched by sample_id)
    mean_a: float
    mean_b: float
    difference: float  # mean_b - mean_a
    ci95: tuple[float, float]  # of the difference (Newcombe for McNemar, percentile for bootstrap)
    p_value: float  # two-sided
    test: Literal["mcnemar_exact", "paired_bootstrap"]

    def significant(self, alpha: float = ALPHA) -> bool:
        """Whether the difference is significant at ``alpha`` (two-sided)."""
        return self.p_value < alpha


def paired_scores(
    store_a: ResultsStore, record_a: RunRecord, store_b: ResultsStore, record_b: RunRecord, metric: str
) -> tuple[list[str], list[float], list[float]]:
    """Per-sample scores of ``metric`` on the samples both records share, matched by sample id.

    Returns the shared ids (sorted) and the two score lists in that order. Samples whose score is
    missing or not finite on either side are left out. Raises DataError when a record has no
    per-sample log, a log repeats a sample id, or nothing is shared.
    """
    scores_a = _scores_by_id(store_a, record_a, metric)
    scores_b = _scores_by_id(store_b, record_b, metric)
    shared = sorted(scores_a.keys() & scores_b.keys())
    if not shared:
        raise DataError(
            f"records {record_a.record_id} ({_describe(record_a)}) and {record_b.record_id} "
            f"({_describe(record_b)}) share no samples with a {metric!r} score"
        )
    return shared, [scores_a[i] for i in shared], [scores_b[i] for i in shared]


def compare_paired(
    a: Sequence[float], b: Sequence[float], metric: str, *, seed: int = 0, iterations: int = 10_000
) -> PairedComparison:
    """Test whether B's mean differs from A's on paired per-sample scores (see the module docstring).

    ``seed`` and ``iterations`` matter only for the bootstrap; the same seed gives the same result.
    """
    if len(a) != len(b):
        raise ValueError(f"paired scores need equal lengths, got {len(a)} and {len(b)}")
    if not a:
        raise ValueError("no paired samples to compare")
    if not all(math.isfinite(x) for x in (*a, *b)):
        raise ValueError("paired scores must be finite numbers")
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}")
    if all(x in (0.0, 1.0) for x in (*a, *b)):
        return _mcnemar_exact(a, b, metric)
    return _paired_bootstrap(a, b, metric, seed, iterations)


def chance_normalized(value: float, chance: float | None) -> float | None:
    """(value - chance) / (1 - chance): 0 is random guessing, 1 is perfect, below 0 is worse than chance.

    None when no chance level is known (or it is 1, where nothing can be gained over guessing).
    """
    if chance is None or not math.isfinite(chance) or chance >= 1.0:
        return None
    return (value - chance) / (1.0 - chance)


def pareto_front(
    points: Sequence[tuple[float | None, float | None]], *, maximize: tuple[bool, bool] = (True, False)
) -> list[bool]:
    """For each point, whether it is on the Pareto front.

    A point is on the front if no other point is at least as good on both coordinates and strictly
    better on one. By default the first coordinate is maximized (accuracy) and the second minimized
    (memory, latency). Points with a missing or NaN coordinate are never on the front and do not
    push others off it. Equal points do not dominate each other, so duplicates are both on it.
    """
    signs = tuple(1.0 if up else -1.0 for up in maximize)
    oriented: list[tuple[float, float] | None] = []
    for x, y in points:
        if x is None or y is None or math.isnan(x) or math.isnan(y):
            oriented.append(None)
        else:
            oriented.append((signs[0] * x, signs[1] * y))
    front = []
    for point in oriented:
        if point is None:
            front.append(False)
            continue
        dominated = any(
            other is not None
            and other[0] >= point[0]
            and other[1] >= point[1]
            and (other[0] > point[0] or other[1] > point[1])
            for other in oriented
        )
        front.append(not dominated)
    return front


def tie_group_ranks(differs_from_next: Sequence[bool]) -> list[int]:
    """Competition ranks (1, 1, 3, ...) for items already in order, from adjacent-pair verdicts.

    ``differs_from_next[i]`` says whether item i and item i+1 differ (significantly); items joined
    by a chain of "not different" pairs form one tie group and share the rank of its first item.
    Chaining means A~B and B~C put A, B and C together even if A and C alone would differ.
    """
    ranks = [1]
    for position, differs in enumerate(differs_from_next, start=1):
        ranks.append(position + 1 if differs else ranks[-1])
    return ranks


# -- tests ---------------------------------------------------------------------------------------


def _mcnemar_exact(a: Sequence[float], b: Sequence[float], metric: str) -> PairedComparison:
    from scipy.stats import binomtest

    n = len(a)
    both = sum(1 for x, y in zip(a, b, strict=True) if x == 1.0 and y == 1.0)
    only_a = sum(1 for x, y in zip(a, b, strict=True) if x == 1.0 and y == 0.0)
    only_b = sum(1 for x, y in zip(a, b, strict=True) if x == 0.0 and y == 1.0)
    neither = n - both - only_a - only_b
    discordant = only_a + only_b
    p_value = 1.0 if discordant == 0 else float(binomtest(only_b, discordant, 0.5).pvalue)
    mean_a, mean_b = (both + only_a) / n, (both + only_b) / n
    return PairedComparison(
        metric=metric,
        n=n,
        mean_a=mean_a,
        mean_b=mean_b,
        difference=mean_b - mean_a,
        ci95=_newcombe_interval(both, only_b, only_a, neither),
        p_value=min(1.0, p_value),
        test="mcnemar_exact",
    )


def _newcombe_interval(both: int, only_1: int, only_2: int, neither: int) -> tuple[float, float]:
    """Newcombe's (1998) method-10 interval for p1 - p2 from a paired 2x2 table."""
    n = both + only_1 + only_2 + neither
    p1, p2 = (both + only_1) / n, (both + only_2) / n
    low1, high1 = wilson_interval(p1, n)
    low2, high2 = wilson_interval(p2, n)
    margins = (both + only_1) * (only_2 + neither) * (both + only_2) * (only_1 + neither)
    phi = 0.0 if margins == 0 else (both * neither - only_1 * only_2) / math.sqrt(margins)
    below = math.sqrt(max(0.0, (p1 - low1) ** 2 - 2 * phi * (p1 - low1) * (high2 - p2) + (high2 - p2) ** 2))
    above = math.sqrt(max(0.0, (high1 - p1) ** 2 - 2 * phi * (high1 - p1) * (p2 - low2) + (p2 - low2) ** 2))
    difference = p1 - p2
    return max(-1.0, difference - below), min(1.0, difference + above)


def _paired_bootstrap(
    a: Sequence[float], b: Sequence[float], metric: str, seed: int, iterations: int
) -> PairedComparison:
    import numpy as np

    differences = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    n = len(differences)
    observed = float(differences.mean())
    rng = np.random.default_rng(seed)
    means = np.empty(iterations, dtype=np.float64)
    chunk = max(1, _BOOTSTRAP_CHUNK_DRAWS // n)
    for start in range(0, iterations, chunk):
        stop = min(iterations, start + chunk)
        indices = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = differences[indices].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    # Re-centre the resampled means on 0 (the null) and count those at least as extreme as observed;
    # the tolerance keeps float noise from turning "equally extreme" into "less extreme".
    extreme = int(np.count_nonzero(np.abs(means - observed) >= abs(observed) - 1e-12))
    mean_a = float(np.mean(np.asarray(a, dtype=np.float64)))
    return PairedComparison(
        metric=metric,
        n=n,
        mean_a=mean_a,
        mean_b=mean_a + observed,
        difference=observed,
        ci95=(float(low), float(high)),
        p_value=min(1.0, (extreme + 1) / (iterations + 1)),
        test="paired_bootstrap",
    )


# -- sample logs ---------------------------------------------------------------------------------


def _scores_by_id(store: ResultsStore, record: RunRecord, metric: str) -> dict[str, float]:
    if record.samples_file is None:
        raise DataError(
            f"record {record.record_id} ({_describe(record)}) has no per-sample log; "
            "paired tests need one (rerun the task to store it)"
        )
    scores: dict[str, float] = {}
    seen: set[str] = set()
    for sample in store.read_samples(record):
        if sample.sample_id in seen:
            raise DataError(
                f"{store.root / record.samples_file}: sample id {sample.sample_id!r} appears twice"
            )
        seen.add(sample.sample_id)
        value = sample.scores.get(metric)
        if value is not None and math.isfinite(value):
            scores[sample.sample_id] = float(value)
    return scores


def _describe(record: RunRecord) -> str:
    return f"{record.model.name} / {record.task.name}"
