"""CI gates: judge a results store against a typed policy of named rules.

``load_policy`` reads the YAML, ``evaluate_gate`` returns one :class:`GateReport` whose
``verdict`` and ``exit_code`` are the only definition of the outcome, and the ``render_*``
functions turn that report into a console table, JUnit XML, a markdown summary and GitHub
annotations.
"""

from evalkit.gate._evaluate import evaluate_gate
from evalkit.gate._policy import (
    GatePolicy,
    LoadedPolicy,
    MaxMemoryRule,
    MaxScoreRule,
    MinScoreRule,
    MinThroughputRatioRule,
    NoRegressionRule,
    Rule,
    load_policy,
)
from evalkit.gate._render import github_annotations, render_console, render_junit, render_markdown
from evalkit.gate._report import EXIT_FAIL, EXIT_PASS, Check, GateReport, RuleResult, Status, Verdict

__all__ = [
    "EXIT_FAIL",
    "EXIT_PASS",
    "Check",
    "GatePolicy",
    "GateReport",
    "LoadedPolicy",
    "MaxMemoryRule",
    "MaxScoreRule",
    "MinScoreRule",
    "MinThroughputRatioRule",
    "NoRegressionRule",
    "Rule",
    "RuleResult",
    "Status",
    "Verdict",
    "evaluate_gate",
    "github_annotations",
    "load_policy",
    "render_console",
    "render_junit",
    "render_markdown",
]
