"""Judge a results store against a gate policy and return one typed :class:`GateReport`.

Bad input (a rule that needs a baseline without one, a metric the task does not have, an
unreadable store) raises an EvalkitError — exit code 2 — rather than becoming a failed rule:
a gate that cannot judge must not look like a model that regressed.
"""

from __future__ import annotations

from pathlib import Path

from evalkit.errors import DataError, SpecError, did_you_mean
from evalkit.gate._evidence import open_store
from evalkit.gate._policy import (
    LoadedPolicy,
    MaxMemoryRule,
    MaxScoreRule,
    MinScoreRule,
    MinThroughputRatioRule,
    NoRegressionRule,
    Rule,
)
from evalkit.gate._report import Check, GateReport, RuleResult, format_value
from evalkit.query import Evidence, StoreQuery, efficiency_figure, efficiency_problem
from evalkit.results import ResultsStore, RunRecord

# Means of per-sample scores are sums of k/n; a drop equal to max_drop must not fail on float noise.
_TOLERANCE = 1e-9


def evaluate_gate(loaded: LoadedPolicy, results: Path, baseline: Path | None = None) -> GateReport:
    """Evaluate every rule of the policy; see the module docstring for what raises."""
    for index, rule in enumerate(loaded.policy.rules):
        if rule.needs_baseline and baseline is None:
            raise SpecError(
                f"{loaded.where(index, 'kind')}: rule {rule.name!r} ({rule.kind}) compares against a "
                "baseline; pass --baseline RESULTS"
            )
    judge = _Judge(loaded, open_store(results), open_store(baseline) if baseline is not None else None)
    rules = tuple(
        RuleResult(
            name=rule.name,
            kind=rule.kind,
            description=rule.description,
            line=loaded.line_of(index),
            checks=judge.checks(index, rule),
        )
        for index, rule in enumerate(loaded.policy.rules)
    )
    return GateReport(
        policy_file=str(loaded.path),
        results=str(results),
        baseline=str(baseline) if baseline is not None else None,
        alpha=loaded.policy.alpha,
        rules=rules,
    )


class _Judge:
    def __init__(self, loaded: LoadedPolicy, current: StoreQuery, baseline: StoreQuery | None) -> None:
        self.loaded, self.current, self._baseline = loaded, current, baseline

    @property
    def baseline(self) -> StoreQuery:
        assert self._baseline is not None, "checked in evaluate_gate"
        return self._baseline

    def checks(self, index: int, rule: Rule) -> tuple[Check, ...]:
        if isinstance(rule, MinScoreRule | MaxScoreRule):
            return (self.score(index, rule),)
        if isinstance(rule, NoRegressionRule):
            return tuple(self.regression(index, rule, task) for task in rule.tasks)
        if isinstance(rule, MinThroughputRatioRule):
            return self.throughput(rule)
        return self.memory(rule)

    # -- scores ---------------------------------------------------------------------------------

    def score(self, index: int, rule: MinScoreRule | MaxScoreRule) -> Check:
        subject = f"{rule.model} / {rule.task}"
        found = self.current.evidence(rule.model, rule.task)
        if found is None:
            return _missing(rule, subject, self.current.absence(rule.model, rule.task))
        metric = self.metric_of(index, rule, found.record)
        value = found.record.metrics[metric]
        floor = isinstance(rule, MinScoreRule)
        if value.higher_is_better != floor:
            direction = "higher" if value.higher_is_better else "lower"
            raise SpecError(
                f"{self.loaded.where(index, 'kind')}: {metric} of {rule.task} is {direction}-is-better; "
                f"use kind: {'min_score' if value.higher_is_better else 'max_score'}"
            )
        threshold = rule.at_least if isinstance(rule, MinScoreRule) else rule.at_most
        passed = value.value >= threshold if floor else value.value <= threshold
        spread = f" ± {format_value(value.stderr, 'score')}" if value.stderr is not None else ""
        detail = f"{metric} {format_value(value.value, 'score')}{spread} on {value.n} samples"
        return Check(
            subject=f"{subject} / {metric}",
            status="pass" if passed else "fail",
            detail=_with_notes(detail, found),
            measured=value.value,
            threshold=threshold,
            comparison=">=" if floor else "<=",
        )

    def regression(self, index: int, rule: NoRegressionRule, task: str) -> Check:
        from evalkit.report.stats import compare_paired, paired_scores

        subject = f"{rule.model} / {task}"
        current = self.current.evidence(rule.model, task)
        if current is None:
            return _missing(rule, subject, self.current.absence(rule.model, task))
        previous = self.baseline.evidence(rule.model, task)
        if previous is None:
            return _missing(rule, subject, "baseline: " + self.baseline.absence(rule.model, task))
        metric = self.metric_of(index, rule, current.record)
        subject = f"{subject} / {metric}"
        if metric not in previous.record.metrics:
            return _missing(rule, subject, f"the baseline record {previous.record.record_id} has no {metric}")
        for evidence in (previous, current):
            if evidence.record.samples_file is None:
                return _missing(
                    rule, subject, f"record {evidence.record.record_id} has no per-sample log to pair on"
                )
        try:
            ids, before, after = paired_scores(
                _store(self.baseline), previous.record, _store(self.current), current.record, metric
            )
        except DataError as exc:
            raise DataError(f"rule {rule.name!r} ({self.loaded.where(index)}): {exc}") from None
        result = compare_paired(before, after, metric)
        higher_is_better = current.record.metrics[metric].higher_is_better
        drop = result.mean_a - result.mean_b if higher_is_better else result.mean_b - result.mean_a
        # compare_paired's p is two-sided and its tests are symmetric under "no difference", so
        # the one-sided p of a change in the observed direction is half of it.
        p_worse = result.p_value / 2 if drop > 0 else 1 - result.p_value / 2
        significant = drop > 0 and p_worse < self.loaded.policy.alpha
        too_large = drop > rule.max_drop + _TOLERANCE
        alpha = self.loaded.policy.alpha
        verdict = "significant regression" if significant else "not significant"
        parts = [
            f"{metric} {format_value(result.mean_a, 'score')} -> {format_value(result.mean_b, 'score')} "
            f"on {len(ids)} shared samples",
            f"drop {format_value(drop, 'score')} {'exceeds' if too_large else 'within'} max_drop "
            f"{format_value(rule.max_drop, 'score')}",
            f"{result.test} one-sided p={p_worse:.3g} {'<' if significant else '>='} alpha {alpha:g}: "
            + verdict,
        ]
        evaluated = max(current.record.metrics[metric].n, previous.record.metrics[metric].n)
        if len(ids) < evaluated:  # the rest of the samples went unjudged: say so
            parts.append(f"only {len(ids)} of {evaluated} samples are in both runs")
        if previous.record.task.fingerprint != current.record.task.fingerprint:
            parts.append("task fingerprints differ from the baseline's; paired on shared sample ids")
        return Check(
            subject=subject,
            status="fail" if significant or too_large else "pass",
            detail=_with_notes("; ".join(parts), previous, current),
            measured=drop,
            threshold=rule.max_drop,
            comparison="<=",
            unit="drop",
            p_value=p_worse,
        )

    def metric_of(
        self, index: int, rule: MinScoreRule | MaxScoreRule | NoRegressionRule, record: RunRecord
    ) -> str:
        metric = rule.metric or record.task.primary_metric
        if metric not in record.metrics:
            known = sorted(record.metrics)
            hint = did_you_mean(metric, known)
            raise SpecError(
                f"{self.loaded.where(index, 'metric')}: task {record.task.name} has no metric {metric!r}; "
                + (f"did you mean {hint}?" if hint else f"it has {', '.join(known) or '(none)'}")
            )
        return metric

    # -- efficiency -----------------------------------------------------------------------------

    def measured(
        self, rule: MinThroughputRatioRule | MaxMemoryRule, figure: str
    ) -> list[Check | tuple[str, Evidence, float]]:
        """Per task: the current evidence and its figure, or a missing-evidence check."""
        tasks = [rule.task] if rule.task is not None else self.current.tasks_with_figure(rule.model, figure)
        if not tasks:
            reason = self.current.absence(rule.model)
            if reason.startswith("no ok record"):  # the model ran, but nothing measured the figure
                reason = f"no ok record of {rule.model} in {self.current.label} carries efficiency.{figure}"
            return [_missing(rule, f"{rule.model} / {figure}", reason)]
        items: list[Check | tuple[str, Evidence, float]] = []
        for task in tasks:
            subject = f"{rule.model} / {task} / {figure}"
            found = self.current.evidence(rule.model, task)
            if found is None:
                items.append(_missing(rule, subject, self.current.absence(rule.model, task)))
                continue
            value = efficiency_figure(found.record, figure)
            if value is None:
                items.append(_missing(rule, subject, _no_figure(found.record, figure)))
                continue
            items.append((subject, found, value))
        return items

    def throughput(self, rule: MinThroughputRatioRule) -> tuple[Check, ...]:
        return tuple(
            item if isinstance(item, Check) else self.throughput_ratio(rule, *item)
            for item in self.measured(rule, rule.metric)
        )

    def throughput_ratio(
        self, rule: MinThroughputRatioRule, subject: str, found: Evidence, value: float
    ) -> Check:
        task = found.record.task.name
        previous = self.baseline.evidence(rule.model, task)
        if previous is None:
            return _missing(rule, subject, "baseline: " + self.baseline.absence(rule.model, task))
        before = efficiency_figure(previous.record, rule.metric)
        if before is None:
            return _missing(rule, subject, "baseline: " + _no_figure(previous.record, rule.metric))
        ratio = value / before
        detail = (
            f"{format_value(value, 'score')} vs baseline {format_value(before, 'score')} tokens/s "
            f"= {format_value(ratio, 'ratio')}"
        )
        return Check(
            subject=subject,
            status="pass" if ratio >= rule.at_least else "fail",
            detail=_with_notes(detail, previous, found),
            measured=ratio,
            threshold=rule.at_least,
            comparison=">=",
            unit="ratio",
        )

    def memory(self, rule: MaxMemoryRule) -> tuple[Check, ...]:
        checks = []
        for item in self.measured(rule, "peak_memory_bytes"):
            if isinstance(item, Check):
                checks.append(item)
                continue
            subject, found, value = item
            checks.append(
                Check(
                    subject=subject,
                    status="pass" if value <= rule.at_most_bytes else "fail",
                    detail=_with_notes(f"peak {int(value):,} B, limit {rule.at_most_bytes:,} B", found),
                    measured=value,
                    threshold=float(rule.at_most_bytes),
                    comparison="<=",
                    unit="bytes",
                )
            )
        return tuple(checks)


def _missing(rule: Rule, subject: str, reason: str) -> Check:
    """No evidence: the rule's `missing` option decides, and fail is the default."""
    prefix = "missing evidence" if rule.missing == "fail" else "skipped (missing: skip)"
    return Check(subject=subject, status=rule.missing, detail=f"{prefix}: {reason}")


def _no_figure(record: RunRecord, figure: str) -> str:
    """Why a record gives no figure: never measured, or stored but not a positive number."""
    return efficiency_problem(record, figure) or f"record {record.record_id} has no efficiency.{figure}"


def _store(query: StoreQuery) -> ResultsStore:
    assert query.store is not None, "open_store keeps the store"
    return query.store


def _with_notes(detail: str, *evidence: Evidence) -> str:
    notes = [note for item in evidence for note in item.notes]
    return "; ".join([detail, *notes])
