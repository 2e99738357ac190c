"""The gate policy: a typed YAML file of named rules that a results store must satisfy.

Each rule kind is its own pydantic model (``extra="forbid"``), chosen by its ``kind`` key, so a
misspelt key or kind fails at load time with file:line and a suggestion. The YAML only
configures; what a rule means lives in :mod:`evalkit.gate._evaluate`.
Numbers are strict and finite: ``.nan``, ``.inf``, ``"0.5"`` and ``true`` are bad input (exit 2),
never a rule that fails, or passes, whatever the store holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from evalkit.errors import SpecError
from evalkit.specs import FiniteFloat, LocatedYaml, load_located_yaml, validate_located

OnMissing = Literal["fail", "skip"]
ThroughputFigure = Literal["prefill_tokens_per_s", "decode_tokens_per_s"]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
        description="unique in the policy; names the rule in every output",
    )
    model: str = Field(min_length=1, description="matches the records' model name, e.g. smollm2-135m")
    missing: OnMissing = Field(
        default="fail",
        description="what a rule does when the store has no record to judge: missing evidence is not a pass",
    )
    description: str = Field(default="", description="why the rule exists; shown in the markdown summary")

    @property
    def needs_baseline(self) -> bool:
        return False


class MinScoreRule(_Rule):
    """The latest ok record's metric value is at least `at_least`."""

    kind: Literal["min_score"]
    task: str
    metric: str | None = Field(default=None, min_length=1, description="default: the task's primary metric")
    at_least: FiniteFloat


class MaxScoreRule(_Rule):
    """The latest ok record's metric value is at most `at_most` (for lower-is-better metrics)."""

    kind: Literal["max_score"]
    task: str
    metric: str | None = Field(default=None, min_length=1, description="default: the task's primary metric")
    at_most: FiniteFloat


class NoRegressionRule(_Rule):
    """Per task, against the baseline: no significant regression and no drop beyond `max_drop`."""

    kind: Literal["no_regression"]
    tasks: list[str] = Field(min_length=1)
    metric: str | None = Field(default=None, min_length=1, description="default: each task's primary metric")
    max_drop: FiniteFloat = Field(ge=0, description="largest allowed worsening of the mean, in metric units")

    @property
    def needs_baseline(self) -> bool:
        return True


class MinThroughputRatioRule(_Rule):
    """An efficiency throughput figure is at least `at_least` × the baseline's."""

    kind: Literal["min_throughput_ratio"]
    metric: ThroughputFigure
    task: str | None = Field(default=None, description="default: every task whose record carries the figure")
    at_least: FiniteFloat = Field(gt=0)

    @property
    def needs_baseline(self) -> bool:
        return True


class MaxMemoryRule(_Rule):
    """`efficiency.peak_memory_bytes` is at most `at_most_bytes`."""

    kind: Literal["max_memory"]
    task: str | None = Field(default=None, description="default: every task whose record carries the figure")
    at_most_bytes: StrictInt = Field(gt=0)


Rule = Annotated[
    MinScoreRule | MaxScoreRule | NoRegressionRule | MinThroughputRatioRule | MaxMemoryRule,
    Field(discriminator="kind"),
]


class GatePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: FiniteFloat = Field(default=0.05, gt=0, lt=1, description="significance level of the paired tests")
    rules: list[Rule] = Field(min_length=1)


@dataclass(frozen=True)
class LoadedPolicy:
    """A validated policy and where it came from, so later checks can still point at file:line."""

    policy: GatePolicy
    located: LocatedYaml

    @property
    def path(self) -> Path:
        return self.located.path

    def line_of(self, index: int, key: str | None = None) -> int:
        return self.located.line_of(("rules", index) if key is None else ("rules", index, key))

    def where(self, index: int, key: str | None = None) -> str:
        return f"{self.path}:{self.line_of(index, key)}"


def load_policy(path: Path) -> LoadedPolicy:
    """Read and validate a gate policy; every problem is a SpecError naming file:line."""
    located = load_located_yaml(path)
    policy = validate_located(GatePolicy, located)
    loaded = LoadedPolicy(policy, located)
    seen: dict[str, int] = {}
    for index, rule in enumerate(policy.rules):
        if rule.name in seen:
            raise SpecError(
                f"{loaded.where(index, 'name')}: rule name {rule.name!r} is already used at line "
                f"{loaded.line_of(seen[rule.name], 'name')}; names must be unique"
            )
        seen[rule.name] = index
    return loaded
