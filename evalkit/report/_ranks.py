"""Ranks with tie groups, from paired tests on the per-sample logs of the records a leaderboard shows.

The rule (also stated in :mod:`evalkit.report.leaderboard`):

* only bounded metrics (fractions such as accuracy) are ranked: their stored value is the mean of
  the per-sample scores, so a paired test on those scores tests the shown number. Perplexity-like
  ratios are not per-sample means and get no rank;
* rows are put in order (the task's value for a task rank, ``mean`` for the overall rank) and each
  adjacent pair is tested with :func:`~evalkit.report.stats.compare_paired` on the samples both
  share (McNemar exact for 0/1 scores, else a seeded paired bootstrap); the overall test pools
  every shared (task, sample) pair of the bounded primary metrics both rows show;
* a pair *differs* only if p < alpha (0.05) **and** the tested difference points the same way as
  the order; a pair that cannot be tested (no per-sample log, nothing shared) does not differ;
* tie groups chain adjacent pairs that do not differ, and share the competition rank of their
  first row (1, 1, 3, ...).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from evalkit.errors import DataError
from evalkit.report.stats import ALPHA, PairedComparison, _scores_by_id, compare_paired, tie_group_ranks
from evalkit.results import ResultsStore, RunRecord

RANK_SEED = 0  # ranks must not change between two views of the same store
_MAX_TIES = 10  # tie explanations listed in the notes


@dataclass
class SampleScores:
    """Per-sample scores read once per (record, metric), and what could not be read."""

    store: ResultsStore
    _cache: dict[tuple[str, str], dict[str, float] | None] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # record id -> why it has no scores

    def get(self, record: RunRecord, metric: str) -> dict[str, float] | None:
        key = (record.record_id, metric)
        if key not in self._cache:
            try:
                scores = _scores_by_id(self.store, record, metric)
            except DataError as exc:
                self.missing[record.record_id] = str(exc)
                scores = None
            if scores is not None and not scores:
                self.missing[record.record_id] = (
                    f"record {record.record_id} ({record.model.name} / {record.task.name}) has no "
                    f"per-sample {metric!r} scores"
                )
                scores = None
            self._cache[key] = scores
        return self._cache[key]


def pooled_comparison(
    upper: Mapping[str, RunRecord],
    lower: Mapping[str, RunRecord],
    labels: Sequence[str],
    scores_a: SampleScores,
    scores_b: SampleScores | None = None,
) -> PairedComparison | None:
    """One paired test over every shared (task, sample) of ``labels`` (B = lower minus A = upper).

    ``upper`` and ``lower`` map a column label ("task/metric") to the record shown there; a label
    takes part when both have it and both records have per-sample scores. None if nothing is shared.
    """
    scores_b = scores_b or scores_a
    a: list[float] = []
    b: list[float] = []
    for label in labels:
        if label not in upper or label not in lower:
            continue
        metric = upper[label].task.primary_metric  # a label names the task and its primary metric
        side_a = scores_a.get(upper[label], metric)
        side_b = scores_b.get(lower[label], metric)
        if side_a is None or side_b is None:
            continue
        for sample_id in sorted(side_a.keys() & side_b.keys()):
            a.append(side_a[sample_id])
            b.append(side_b[sample_id])
    if not a:
        return None
    return compare_paired(a, b, "pooled", seed=RANK_SEED)


def adjacent_ranks(
    order: Sequence[int],
    rows: Sequence[Mapping[str, RunRecord]],
    labels: Sequence[str],
    scores: SampleScores,
    higher_is_better: bool,
    alpha: float = ALPHA,
) -> tuple[dict[int, int], list[tuple[int, int, PairedComparison | None]]]:
    """Rank of each row index in ``order`` (best first), chaining adjacent pairs that do not differ.

    Also returns the adjacent pairs that were *not* found different, with their test (None when
    they could not be tested), so a reader can be told why two rows share a rank.
    """
    differs = []
    ties = []
    for upper, lower in itertools.pairwise(order):
        comparison = pooled_comparison(rows[upper], rows[lower], labels, scores)
        agrees = comparison is not None and (
            comparison.difference < 0 if higher_is_better else comparison.difference > 0
        )
        different = comparison is not None and comparison.significant(alpha) and agrees
        differs.append(different)
        if not different:
            ties.append((upper, lower, comparison))
    ranks = dict(zip(order, tie_group_ranks(differs), strict=True)) if order else {}
    return ranks, ties


def compute_ranks(
    rows: Sequence[Mapping[str, RunRecord]],
    names: Sequence[str],
    means: Sequence[float],
    columns: Sequence[tuple[str, bool]],
    store: ResultsStore,
) -> tuple[list[int | None], dict[str, list[int | None]], list[str]]:
    """Overall and per-column ranks for rows already sorted by mean (best first), and notes.

    ``rows[i]`` maps each bounded column label to the record row i shows there and ``names[i]``
    is its display name; ``columns`` lists the bounded labels with their direction.
    """
    scores = SampleScores(store)
    labels = [label for label, _ in columns]

    overall_order = [i for i, mean in enumerate(means) if not math.isnan(mean)]
    overall, ties = adjacent_ranks(overall_order, rows, labels, scores, higher_is_better=True)

    per_column: dict[str, list[int | None]] = {}
    for label, higher_is_better in columns:
        present = [i for i, row in enumerate(rows) if label in row]
        value = {i: _stored_value(rows[i][label]) for i in present}
        present = [i for i in present if not math.isnan(value[i])]
        # Python's sort is stable, so rows with equal values keep the overall order.
        order = sorted(present, key=lambda i: -value[i] if higher_is_better else value[i])
        ranks, _ = adjacent_ranks(order, rows, [label], scores, higher_is_better)
        per_column[label] = [ranks.get(i) for i in range(len(rows))]

    notes = []
    if ties:
        shown_ties = [_tie(names[upper], names[lower], result) for upper, lower, result in ties[:_MAX_TIES]]
        more = f"; and {len(ties) - _MAX_TIES} more" if len(ties) > _MAX_TIES else ""
        notes.append(
            "ranks: adjacent models not shown different by the pooled paired test (so they share a "
            f"tie group): {'; '.join(shown_ties)}{more}"
        )
    if scores.missing:
        shown = "; ".join(sorted(scores.missing.values())[:3])
        more = f" (and {len(scores.missing) - 3} more)" if len(scores.missing) > 3 else ""
        notes.append(
            f"ranks: {len(scores.missing)} shown record(s) cannot be paired, so pairs involving them "
            f"are not counted as different: {shown}{more}"
        )
    return [overall.get(i) for i in range(len(rows))], per_column, notes


def _tie(upper: str, lower: str, result: PairedComparison | None) -> str:
    if result is None:
        return f"{upper} ~ {lower} (nothing paired to test)"
    return f"{upper} ~ {lower} (p = {result.p_value:.3g}, {result.n} shared samples)"


def _stored_value(record: RunRecord) -> float:
    value = record.metrics.get(record.task.primary_metric)
    return math.nan if value is None else value.value
