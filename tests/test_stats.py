"""evalkit.report.stats: paired tests, chance normalization, Pareto fronts and tie-group ranks."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
from fabricate_results import correct_on, make_record, scored, store_with

from evalkit.errors import DataError
from evalkit.report.stats import (
    chance_normalized,
    compare_paired,
    paired_scores,
    pareto_front,
    tie_group_ranks,
)
from evalkit.results import ResultsStore, RunRecord, SampleLog


def table(both: int, only_a: int, only_b: int, neither: int) -> tuple[list[float], list[float]]:
    """Paired 0/1 scores with the given 2x2 counts."""
    a = [1.0] * both + [1.0] * only_a + [0.0] * only_b + [0.0] * neither
    b = [1.0] * both + [0.0] * only_a + [1.0] * only_b + [0.0] * neither
    return a, b


# -- McNemar --------------------------------------------------------------------------------------


def test_mcnemar_p_value_is_the_exact_two_sided_binomial_on_discordant_pairs() -> None:
    a, b = table(both=30, only_a=2, only_b=10, neither=18)
    result = compare_paired(a, b, "acc")
    # 12 discordant samples, 2 favour A: p = 2 * P(X <= 2), X ~ Binomial(12, 1/2).
    expected = 2 * sum(math.comb(12, k) for k in range(3)) / 2**12
    assert result.test == "mcnemar_exact"
    assert result.p_value == pytest.approx(expected)  # = 0.0386
    assert (result.n, result.mean_a, result.mean_b) == (60, 32 / 60, 40 / 60)
    assert result.difference == pytest.approx(8 / 60)
    assert result.significant() and not result.significant(alpha=0.01)


def test_mcnemar_without_discordant_pairs_has_p_one_and_an_interval_around_zero() -> None:
    a, b = table(both=40, only_a=0, only_b=0, neither=20)
    result = compare_paired(a, b, "acc")
    assert (result.p_value, result.difference) == (1.0, 0.0)
    low, high = result.ci95
    assert low < 0 < high  # n=60 cannot rule out a small difference either way


def test_mcnemar_interval_is_close_to_the_wald_interval_when_n_is_large() -> None:
    a, b = table(both=3000, only_a=400, only_b=600, neither=6000)
    result = compare_paired(a, b, "acc")
    n, difference = 10_000, 200 / 10_000
    wald_se = math.sqrt((400 + 600) - (600 - 400) ** 2 / n) / n
    assert result.ci95[0] == pytest.approx(difference - 1.96 * wald_se, abs=5e-4)
    assert result.ci95[1] == pytest.approx(difference + 1.96 * wald_se, abs=5e-4)


def test_mcnemar_interval_stays_inside_minus_one_to_one() -> None:
    result = compare_paired([0.0] * 5, [1.0] * 5, "acc")
    assert result.difference == 1.0
    assert 0 < result.ci95[0] < 1.0 and result.ci95[1] == 1.0
    assert result.p_value == pytest.approx(2 / 2**5)


# -- bootstrap ------------------------------------------------------------------------------------


def synthetic(n: int, shift: float, seed: int) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    a = [rng.random() for _ in range(n)]
    b = [min(1.0, max(0.0, x + shift + rng.gauss(0, 0.15))) for x in a]
    return a, b


def test_bootstrap_is_reproducible_with_a_seed() -> None:
    a, b = synthetic(200, 0.05, seed=1)
    first = compare_paired(a, b, "f1", seed=7, iterations=2_000)
    assert compare_paired(a, b, "f1", seed=7, iterations=2_000) == first
    assert compare_paired(a, b, "f1", seed=8, iterations=2_000).ci95 != first.ci95
    assert first.test == "paired_bootstrap"


def test_bootstrap_interval_covers_the_true_difference() -> None:
    a, b = synthetic(400, 0.1, seed=3)
    true_difference = sum(b) / len(b) - sum(a) / len(a)  # the clipping at 1 shaves a little off 0.1
    result = compare_paired(a, b, "f1")
    assert result.ci95[0] < true_difference < result.ci95[1]
    assert result.ci95[0] > 0.05 and result.ci95[1] < 0.15
    assert result.difference == pytest.approx(true_difference)
    assert result.p_value == pytest.approx(1 / 10_001)  # no resample as extreme under the null


def test_bootstrap_finds_no_difference_between_equal_scores() -> None:
    a, _ = synthetic(100, 0.0, seed=5)
    result = compare_paired(a, list(a), "f1", iterations=500)
    assert (result.difference, result.ci95, result.p_value) == (0.0, (0.0, 0.0), 1.0)


def test_bootstrap_p_value_is_large_for_noise_around_zero() -> None:
    a, b = synthetic(100, 0.0, seed=11)
    result = compare_paired(a, b, "f1", iterations=2_000)
    assert result.p_value > 0.05 and result.ci95[0] < 0 < result.ci95[1]


def test_bootstrap_of_many_samples_runs_in_bounded_memory() -> None:
    a = [0.5] * 50_000
    b = [0.5 + (0.1 if i % 2 else -0.1) for i in range(50_000)]
    result = compare_paired(a, b, "f1", iterations=300)
    assert result.n == 50_000 and result.ci95[0] < 0 < result.ci95[1]


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ([1.0], [1.0, 0.0], "equal lengths"),
        ([], [], "no paired samples"),
        ([math.nan], [1.0], "finite"),
    ],
)
def test_compare_paired_rejects_bad_input(a: list[float], b: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compare_paired(a, b, "acc")


# -- chance, Pareto, ranks ------------------------------------------------------------------------


def test_chance_normalization() -> None:
    assert chance_normalized(0.25, 0.25) == 0.0
    assert chance_normalized(1.0, 0.25) == 1.0
    assert chance_normalized(0.625, 0.25) == pytest.approx(0.5)
    assert chance_normalized(0.1, 0.5) == pytest.approx(-0.8)  # worse than guessing
    assert chance_normalized(0.7, None) is None
    assert chance_normalized(0.7, 1.0) is None


def test_pareto_front_on_a_hand_made_set() -> None:
    points: list[tuple[float | None, float | None]] = [
        (0.80, 4.0),  # most accurate: on the front
        (0.50, 1.0),  # cheapest: on the front
        (0.60, 2.0),  # between them, beaten by neither: on the front
        (0.55, 3.0),  # (0.60, 2.0) is better on both
        (0.60, 2.5),  # as accurate as (0.60, 2.0) but dearer
        (0.50, 1.0),  # a duplicate of a front point is on the front too
        (None, 0.5),  # no accuracy: never on the front, pushes nobody off
        (0.90, math.nan),
    ]
    assert pareto_front(points) == [True, True, True, False, False, True, False, False]


def test_pareto_front_directions_can_be_chosen() -> None:
    points: list[tuple[float | None, float | None]] = [(1.0, 1.0), (2.0, 2.0)]
    assert pareto_front(points) == [True, True]  # accuracy up, cost down: a trade-off
    assert pareto_front(points, maximize=(True, True)) == [False, True]
    assert pareto_front(points, maximize=(False, False)) == [True, False]


def test_tie_group_ranks_chain_and_skip() -> None:
    assert tie_group_ranks([]) == [1]
    assert tie_group_ranks([True, True]) == [1, 2, 3]
    assert tie_group_ranks([False, True, False, False]) == [1, 1, 3, 3, 3]


# -- pairing sample logs ------------------------------------------------------------------------


def stored(tmp_path: Path, pairs: list[tuple[RunRecord, list[SampleLog] | None]]) -> list[RunRecord]:
    store = ResultsStore(tmp_path / "results")
    return [store.append(record, samples) for record, samples in pairs]


def test_paired_scores_match_by_sample_id_and_skip_missing_scores(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "results")
    a = make_record("a", "arc_easy", {"acc": 0.5}, n=4)
    b = make_record("b", "arc_easy", {"acc": 0.5}, n=4)
    record_a, record_b = stored(
        tmp_path,
        [
            (a, [*scored([1.0, 0.0, 1.0], ids=["10", "2", "3"]), *scored([1.0], "acc_norm", ids=["4"])]),
            (b, scored([0.0, 1.0, 1.0, 1.0], ids=["3", "10", "2", "99"])),
        ],
    )
    ids, scores_a, scores_b = paired_scores(store, record_a, store, record_b, "acc")
    assert ids == ["10", "2", "3"]  # "4" has no score on A's side, "99" is B's alone
    assert scores_a == [1.0, 0.0, 1.0] and scores_b == [1.0, 1.0, 0.0]


def test_paired_scores_errors(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "results")
    no_log, with_log, other_ids, twice = stored(
        tmp_path,
        [
            (make_record("a", "arc_easy", {"acc": 0.5}), None),
            (make_record("b", "arc_easy", {"acc": 0.5}), correct_on(3, [0])),
            (make_record("c", "arc_easy", {"acc": 0.5}), scored([1.0], ids=["x"])),
            (make_record("d", "arc_easy", {"acc": 0.5}), scored([1.0, 0.0], ids=["1", "1"])),
        ],
    )
    with pytest.raises(DataError, match=r"\(a / arc_easy\) has no per-sample log"):
        paired_scores(store, no_log, store, with_log, "acc")
    with pytest.raises(DataError, match="share no samples with a 'acc' score"):
        paired_scores(store, with_log, store, other_ids, "acc")
    with pytest.raises(DataError, match="share no samples with a 'f1' score"):
        paired_scores(store, with_log, store, with_log, "f1")
    with pytest.raises(DataError, match="sample id '1' appears twice"):
        paired_scores(store, with_log, store, twice, "acc")


def test_paired_scores_across_two_stores(tmp_path: Path) -> None:
    a = make_record("a", "arc_easy", {"acc": 0.5}, n=3)
    b = make_record("b", "arc_easy", {"acc": 0.5}, n=3)
    store_a = ResultsStore(store_with(tmp_path / "one", [a], {a.record_id: correct_on(3, [0, 1])}))
    store_b = ResultsStore(store_with(tmp_path / "two", [b], {b.record_id: correct_on(3, [2])}))
    (record_a,), _ = store_a.read()
    (record_b,), _ = store_b.read()
    ids, scores_a, scores_b = paired_scores(store_a, record_a, store_b, record_b, "acc")
    assert (ids, scores_a, scores_b) == (["0", "1", "2"], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0])


# -- evalkit's own mean and standard error against lm-eval's -------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_own_mean_and_stderr_equal_lm_evals_to_the_last_bit(seed: int) -> None:
    # lm-eval stays a dependency for interop only; here it is the reference evalkit's figures must equal.
    from lm_eval.api import metrics as lm

    from evalkit.kinds._stats import exp_of_negative_mean, mean, mean_metric, mean_stderr

    rng = random.Random(seed)
    n = rng.randint(2, 3000)
    accuracies = [float(rng.random() < 0.37) for _ in range(n)]
    logprobs = [-rng.expovariate(0.3) for _ in range(n)]
    for values in (accuracies, logprobs):
        assert mean(values) == lm.mean(values)
        assert mean_stderr(values) == lm.mean_stderr(values)
    metric = mean_metric(accuracies)
    assert (metric.value, metric.stderr, metric.n) == (lm.mean(accuracies), lm.mean_stderr(accuracies), n)
    perplexity = exp_of_negative_mean(logprobs)
    assert perplexity.value == lm.perplexity(logprobs)
    assert perplexity.stderr == lm.perplexity(logprobs) * lm.mean_stderr(logprobs)


def test_mean_metric_of_one_value_has_no_stderr_and_of_none_is_nan_without_interval() -> None:
    from evalkit.kinds._stats import mean_metric

    single = mean_metric([1.0])
    assert (single.value, single.stderr, single.n) == (1.0, None, 1)  # Wilson's interval needs no stderr
    empty = mean_metric([])
    assert math.isnan(empty.value) and (empty.stderr, empty.ci95, empty.n) == (None, None, 0)


def test_mean_stderr_is_the_sample_standard_deviation_over_root_n() -> None:
    from evalkit.kinds._stats import mean_stderr, sample_stddev

    # [1, 0, 1, 0]: mean 0.5, squared deviations sum to 1, sample variance 1/3.
    assert sample_stddev([1.0, 0.0, 1.0, 0.0]) == pytest.approx(math.sqrt(1 / 3))
    assert mean_stderr([1.0, 0.0, 1.0, 0.0]) == pytest.approx(math.sqrt(1 / 3) / 2)


# -- intervals that can be true (issue 10, case 6) ----------------------------------------------


def zero_one(correct: int, n: int) -> list[float]:
    return [1.0] * correct + [0.0] * (n - correct)


@pytest.mark.parametrize(
    ("correct", "n", "wilson"),
    [
        # Wilson's score interval, z = 1.959964 (the Wald intervals were -6.6-51.0, 100-100, -1.1-31.1 %).
        (2, 9, (0.0632, 0.5474)),
        (9, 9, (0.70085, 1.0)),  # 9 / (9 + z^2)
        (3, 20, (0.0524, 0.3604)),
        (0, 5, (0.0, 0.4345)),
    ],
)
def test_proportions_get_wilson_intervals_inside_zero_one(
    correct: int, n: int, wilson: tuple[float, float]
) -> None:
    from evalkit.kinds._stats import mean_metric

    metric = mean_metric(zero_one(correct, n))
    assert metric.ci95 is not None
    low, high = metric.ci95
    assert 0.0 <= low <= metric.value <= high <= 1.0
    assert (low, high) == pytest.approx(wilson, abs=5e-5)
    assert metric.stderr == pytest.approx(math.sqrt(metric.value * (1 - metric.value) / (n - 1)))  # lm-eval's


def test_all_correct_has_an_upper_bound_of_exactly_one_and_a_lower_bound_below() -> None:
    from evalkit.kinds._stats import mean_metric

    low, high = mean_metric(zero_one(9, 9)).ci95 or (math.nan, math.nan)
    assert high == 1.0 and low < 1.0
    low, high = mean_metric(zero_one(0, 9)).ci95 or (math.nan, math.nan)
    assert low == 0.0 and high > 0.0
    single = mean_metric([1.0]).ci95 or (math.nan, math.nan)
    assert single[1] == 1.0 and single[0] == pytest.approx(0.2065, abs=5e-5)  # one sample says little


def test_fractional_scores_get_a_reproducible_percentile_bootstrap() -> None:
    from evalkit.kinds._stats import mean_metric

    rng = random.Random(4)
    scores = [rng.random() ** 3 for _ in range(300)]
    first = mean_metric(scores)
    assert first.ci95 is not None
    assert mean_metric(list(scores)).ci95 == first.ci95  # seeded: the same scores, the same interval
    low, high = first.ci95
    assert min(scores) <= low < first.value < high <= max(scores)
    # a percentile bootstrap of a mean agrees with the normal interval when n is large
    assert high - low == pytest.approx(2 * 1.959963984540054 * (first.stderr or 0.0), rel=0.1)
    constant = mean_metric([0.5, 0.5, 0.5])
    assert constant.ci95 == (0.5, 0.5)


def test_perplexity_interval_is_positive_and_reproducible() -> None:
    from evalkit.kinds._stats import bits_per_byte, exp_of_negative_mean, weighted_perplexity

    logprobs = [-0.1, -5.0, -0.3, -4.0]
    perplexity = exp_of_negative_mean(logprobs)
    assert perplexity.ci95 is not None
    low, high = perplexity.ci95
    # the delta-method interval went below zero here: value - 1.96 * stderr = 6.1 - 1.96 * 3.7 < 0
    assert 0 < low < perplexity.value < high
    assert exp_of_negative_mean(list(logprobs)).ci95 == perplexity.ci95
    words = [1.0, 3.0, 1.0, 2.0]
    word = weighted_perplexity(logprobs, words)
    assert word.ci95 is not None and 0 < word.ci95[0] < word.value < word.ci95[1]
    bits = bits_per_byte(logprobs, words)
    assert bits.ci95 is not None and bits.ci95[0] < bits.value < bits.ci95[1]
    assert bits.ci95 == pytest.approx((math.log2(word.ci95[0]), math.log2(word.ci95[1])))


# -- records evalkit writes it can read (issue 10, case 2) ---------------------------------------


def test_an_overflowing_perplexity_is_infinite_not_an_error() -> None:
    from evalkit.kinds._stats import exp_of_negative_mean, weighted_perplexity

    word = weighted_perplexity([-1000.0], [1.0])  # one long word: exp(1000) raised OverflowError
    assert word.value == math.inf and word.stderr is None and word.ci95 is None
    edge = exp_of_negative_mean([-712.0, -706.0])  # finite value, but stderr and the upper bound overflow
    assert math.isfinite(edge.value) and edge.stderr is None
    assert edge.ci95 is not None and math.isfinite(edge.ci95[0]) and edge.ci95[1] == math.inf
