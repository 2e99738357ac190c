"""The outcome of a gate: a typed report that every output is rendered from.

The verdict and the exit code are properties of :class:`GateReport` and nothing else decides
them, so the console table, JUnit XML, markdown summary and GitHub annotations cannot disagree
with the exit status (a test renders all of them for each kind of outcome and checks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["pass", "fail", "skip"]
Verdict = Literal["pass", "fail"]
Comparison = Literal[">=", "<="]
Unit = Literal["score", "bytes", "ratio", "drop"]

EXIT_PASS = 0
EXIT_FAIL = 1


@dataclass(frozen=True)
class Check:
    """One judged quantity: a rule over several tasks makes one check per task.

    `measured {comparison} threshold` is the pass condition where both are known; a check
    without a measurement (missing evidence) carries the reason in `detail`.
    """

    subject: str  # e.g. "smollm2-135m / arc_easy / acc"
    status: Status
    detail: str
    measured: float | None = None
    threshold: float | None = None
    comparison: Comparison | None = None
    unit: Unit = "score"
    p_value: float | None = None  # one-sided, for significance tests


@dataclass(frozen=True)
class RuleResult:
    name: str
    kind: str
    description: str
    line: int  # where the rule starts in the policy file (for annotations)
    checks: tuple[Check, ...]

    @property
    def status(self) -> Status:
        """fail if any check failed; pass if any passed (the rest skipped); skip if all skipped."""
        statuses = {check.status for check in self.checks}
        if "fail" in statuses:
            return "fail"
        return "pass" if "pass" in statuses else "skip"

    @property
    def failed_checks(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if check.status == "fail")


@dataclass(frozen=True)
class GateReport:
    policy_file: str
    results: str
    baseline: str | None
    alpha: float
    rules: tuple[RuleResult, ...]

    @property
    def verdict(self) -> Verdict:
        """The one definition of the outcome: the gate fails when any rule fails."""
        return "fail" if any(rule.status == "fail" for rule in self.rules) else "pass"

    @property
    def exit_code(self) -> int:
        return EXIT_FAIL if self.verdict == "fail" else EXIT_PASS

    def count(self, status: Status) -> int:
        return sum(1 for rule in self.rules if rule.status == status)

    @property
    def summary(self) -> str:
        """One sentence every output repeats, e.g. "FAIL: 1 of 4 rules failed (no-regression)"."""
        total = len(self.rules)
        skipped = self.count("skip")
        tail = f"; {skipped} skipped" if skipped else ""
        if self.verdict == "fail":
            failed = [rule.name for rule in self.rules if rule.status == "fail"]
            return f"FAIL: {len(failed)} of {total} rules failed ({', '.join(failed)}){tail}"
        return f"PASS: {self.count('pass')} of {total} rules passed{tail}"


def format_value(value: float, unit: Unit) -> str:
    """A number as every output shows it: short, but exact enough to compare with a threshold."""
    if unit == "bytes":
        return f"{value / 1e9:.2f} GB" if value >= 1e9 else f"{value / 1e6:.1f} MB"
    if unit == "ratio":
        return f"{value:.3f}x"
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    text = "0" if text in ("-0", "") else text
    return f"drop {text}" if unit == "drop" else text
