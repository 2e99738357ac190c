"""Typed task and suite specifications, loaded from YAML with file:line errors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from evalkit.specs._numbers import FiniteFloat, StrictPositiveInt
from evalkit.specs._validate import validate_located
from evalkit.specs._yaml import LocatedYaml, load_located_yaml
from evalkit.specs.dataset import DatasetSpec

# A kind names a registered task executor (`evalkit.kinds.EXECUTORS`); which names exist is the
# registry's business, checked when a run is planned, so a plugin's kind needs no change here.
KindName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
# Catalogue tasks are file names; `lmeval:NAME` runs lm-eval's task NAME (its own spelling).
TASK_NAME_PATTERN = r"^([a-z0-9][a-z0-9_.\-]*|lmeval:[A-Za-z0-9][A-Za-z0-9_.\-]*)$"

# RULER's threshold: Llama-2-7B's score at 4k tokens, the bar a length must clear to count as usable.
RULER_THRESHOLD = 85.6
DEFAULT_LENGTHS = [256, 512, 1024, 2048, 4096, 8192, 16384, 32768]
DEFAULT_DEPTHS = [round(i / 10, 1) for i in range(11)]
Depth = Annotated[FiniteFloat, Field(ge=0.0, le=1.0)]


class GenerationSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stop: list[str] = Field(default_factory=lambda: ["\n\n"])
    max_tokens: StrictInt = Field(default=64, ge=1)


class AnswerSpec(BaseModel):
    """How a generated answer is extracted and compared with the references.

    Extraction follows lm-eval's `regex` filter: every match of `regex` is found, the one at
    `group_select` (0 the first, -1 the last) is taken (its first non-empty group, or the whole
    match), stripped; no match gives `fallback`. Without a regex the whole generation, stripped, is
    the answer. `flexible_regex` is a second extraction (lm-eval gsm8k's flexible-extract), scored
    as `exact_match_flexible`. Comparison follows lm-eval's `exact_match`: `regexes_to_ignore` are
    removed from answer and references, then case and punctuation are dropped as asked.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    regex: str | None = Field(default=None, description="first capture group (or whole match) is the answer")
    group_select: StrictInt = Field(default=0, description="which match of `regex`: 0 the first, -1 the last")
    fallback: str = Field(default="", description="the answer when `regex` does not match")
    flexible_regex: str | None = Field(
        default=None, description="a second extraction (its last match), scored as exact_match_flexible"
    )
    regexes_to_ignore: list[str] = Field(
        default_factory=list, description="removed from the answer and every reference before comparing"
    )
    ignore_case: StrictBool = True
    ignore_punctuation: StrictBool = False
    strip: StrictBool = Field(
        default=True, description="also strip and collapse whitespace in answer and references"
    )
    scorer: Literal["exact_match", "drop", "squad"] = Field(
        default="exact_match",
        description="drop: DROP's span-bag exact match and F1 over the documents' `answer_spans`; "
        "squad: SQuAD's exact match and token F1, the best over the references",
    )

    @field_validator("regex", "flexible_regex")
    @classmethod
    def _regex_compiles(cls, regex: str | None) -> str | None:
        if regex is not None:
            _compile(regex)
        return regex

    @field_validator("regexes_to_ignore")
    @classmethod
    def _regexes_compile(cls, regexes: list[str]) -> list[str]:
        for regex in regexes:
            _compile(regex)
        return regexes


def _compile(regex: str) -> None:
    try:
        re.compile(regex)
    except re.error as exc:
        raise ValueError(f"regex {regex!r} does not compile: {exc}") from None


class EfficiencySpec(BaseModel):
    """What an `efficiency` task measures and how long it keeps measuring (see `evalkit.efficiency`).

    Lengths are in tokens of seeded random input. Each figure is repeated until both
    `min_repetitions` and `min_seconds` are reached, after `warmup` unrecorded runs.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt_lengths: list[StrictPositiveInt] = Field(default_factory=lambda: [128, 512, 2048], min_length=1)
    context_lengths: list[StrictPositiveInt] = Field(default_factory=lambda: [128, 512, 2048], min_length=1)
    decode_tokens: StrictPositiveInt = 32
    warmup: StrictInt = Field(default=1, ge=0)
    min_repetitions: StrictPositiveInt = 3
    min_seconds: FiniteFloat = Field(default=1.0, ge=0)
    seed: StrictInt = 1234
    isolate: StrictBool = Field(
        default=True, description="measure in a fresh subprocess that loads the model"
    )
    timeout_s: FiniteFloat = Field(
        default=1800.0, gt=0, description="the subprocess is killed after this long"
    )


class SweepSpec(BaseModel):
    """Grid rows that vary a generator parameter instead of the depth (e.g. associative recall's pairs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    param: str
    values: list[StrictPositiveInt] = Field(min_length=1)


class LongContextSpec(BaseModel):
    """A seeded synthetic long-context task: a generator, its haystack, and the grid it is run on.

    Each cell of the grid (row × length) gets `samples` samples; a row is a needle depth (0 = start
    of the haystack, 1 = end) or, with `sweep`, a value of a generator parameter. Lengths count the
    fully rendered prompt in the model's own tokenizer plus `max_new_tokens`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    generator: str
    params: dict[str, Any] = Field(default_factory=dict, description="the generator's parameters")
    haystack: str = Field(
        default="noise", description="noise | prose | a text file (relative to the task file)"
    )
    lengths: list[StrictPositiveInt] = Field(default_factory=lambda: list(DEFAULT_LENGTHS), min_length=1)
    depths: list[Depth] = Field(default_factory=lambda: list(DEFAULT_DEPTHS), min_length=1)
    sweep: SweepSpec | None = None
    samples: StrictPositiveInt = Field(default=1, description="samples per cell; --limit caps it")
    seed: StrictInt = 42
    max_new_tokens: StrictPositiveInt = 32
    stop: list[str] = Field(default_factory=lambda: ["\n"])
    mode: Literal["generate", "loglikelihood"] = "generate"
    distractors: StrictPositiveInt = Field(
        default=4, description="loglikelihood mode: wrong values ranked per answer"
    )
    template: str = Field(
        default="{instruction}\n\n{context}\n\n{question}",
        description="how instruction, context and question are joined (the answer prefix follows)",
    )
    beyond_window: Literal["skip", "run"] = Field(
        default="skip", description="cells longer than the model's context window: skip (recorded) or run"
    )
    threshold: FiniteFloat = Field(default=RULER_THRESHOLD, ge=0, le=100)
    relative_fraction: FiniteFloat = Field(default=0.8, gt=0, le=1)

    @model_validator(mode="after")
    def _grid_is_sane(self) -> LongContextSpec:
        if sorted(set(self.lengths)) != list(self.lengths):
            raise ValueError("lengths must be strictly increasing")
        if len(set(self.depths)) != len(self.depths):
            raise ValueError("depths must not repeat")
        if self.sweep is not None and len(self.depths) != 1:
            raise ValueError("with a sweep, give exactly one depth (where the swept block sits)")
        return self


class TaskSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=TASK_NAME_PATTERN)
    kind: KindName
    summary: str = ""
    dataset: DatasetSpec = Field(default_factory=DatasetSpec)  # empty for the efficiency kind
    preprocess: str | None = Field(default=None, description="registered preprocessor name")
    template: str = Field(default="{query}", description="str.format template over the document's fields")
    instruction: str = Field(default="", description="prepended once, before the few-shot examples")
    target_delimiter: str = " "
    fewshot_delimiter: str = "\n\n"
    num_fewshot: StrictInt = Field(default=0, ge=0)
    fewshot_seed: StrictInt = 1234
    fewshot_sampler: Literal["random", "first_n"] = Field(
        default="random",
        description="random: seeded per document; first_n: the pool's first examples (fixed exemplars)",
    )
    fewshot_match: str | None = Field(
        default=None,
        description="take few-shot examples only from pool documents whose value of this field equals "
        "the document's (MMLU: the same subject, as lm-eval does)",
    )
    metrics: list[str] | None = None
    generation: GenerationSpec = Field(default_factory=GenerationSpec)
    answer: AnswerSpec = Field(default_factory=AnswerSpec, validate_default=True)
    tags: list[str] = Field(default_factory=list)
    efficiency: EfficiencySpec | None = None  # kind efficiency only (defaults when omitted)
    long_context: LongContextSpec | None = None  # kind long_context only (required there)
    published: dict[str, FiniteFloat] = Field(
        default_factory=dict, description="reference scores, e.g. {'smollm2-135m/acc_norm': 0.5}"
    )

    source_file: str | None = Field(default=None, exclude=True)
    _located: LocatedYaml | None = PrivateAttr(default=None)

    @field_validator("kind")
    @classmethod
    def _kind_is_registered(cls, kind: str) -> str:
        from evalkit.errors import did_you_mean
        from evalkit.registry import names_in

        known = names_in("executors")
        if kind not in known:
            hint = did_you_mean(kind, known)
            raise ValueError(
                f"unknown task kind {kind!r}; "
                + (f"did you mean {hint}?" if hint else f"known: {', '.join(known)}")
            )
        return kind

    @field_validator("answer")
    @classmethod
    def _answer_gives_the_metrics(cls, answer: AnswerSpec, info: ValidationInfo) -> AnswerSpec:
        metrics = info.data.get("metrics") or []
        if "exact_match_flexible" in metrics and answer.flexible_regex is None:
            raise ValueError("metric exact_match_flexible needs answer.flexible_regex")
        if answer.scorer in ("drop", "squad"):
            other = sorted(set(metrics) - {"exact_match", "f1"})
            if other:
                raise ValueError(f"scorer {answer.scorer} gives exact_match and f1, not {', '.join(other)}")
        elif "f1" in metrics:
            raise ValueError("metric f1 needs answer.scorer: drop or squad")
        return answer

    @field_validator("efficiency", "long_context")
    @classmethod
    def _block_fits_kind(cls, block: BaseModel | None, info: ValidationInfo) -> BaseModel | None:
        # A kind-specific block belongs to the kind of the same name; whether a kind *needs* its
        # block (or a dataset) is its executor's check, run when the task is planned. A field
        # validator (`kind` is validated first) so the error points at the block's own line.
        kind, name = info.data.get("kind"), info.field_name
        if block is not None and kind is not None and kind != name:
            raise ValueError(f"the {name} block needs kind: {name} (this task is {kind})")
        return block

    def where(self, *location: str | int) -> str:
        """`file:line` of a key path in the task file (the file, or the task name, when unknown)."""
        if self._located is not None:
            return self._located.where(tuple(location))
        return self.source_file or self.name

    @property
    def located(self) -> LocatedYaml | None:
        """The parsed task file with the line of every key (None for specs built in code)."""
        return self._located

    def given(self, field_name: str) -> bool:
        """Whether the task file (or the code that built the spec) set `field_name` explicitly."""
        return field_name in self.model_fields_set


class SuiteEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str
    limit: StrictInt | None = Field(default=None, ge=1)
    num_fewshot: StrictInt | None = Field(default=None, ge=0)
    # long_context tasks only: run the task's generator on a smaller (or larger) grid
    lengths: list[StrictPositiveInt] | None = Field(default=None, min_length=1)
    depths: list[Depth] | None = Field(default=None, min_length=1)
    params: dict[str, Any] | None = Field(default=None, description="merged over the generator's params")
    sweep: list[StrictPositiveInt] | None = Field(default=None, min_length=1, description="the swept values")


class SuiteSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    suite: str
    summary: str = ""
    tasks: list[SuiteEntry] = Field(min_length=1)

    source_file: str | None = Field(default=None, exclude=True)


def load_task_file(path: Path) -> TaskSpec:
    """The task file's spec, shape-checked; its kind's own checks run when a run is planned."""
    located = load_located_yaml(path)
    spec = validate_located(TaskSpec, located).model_copy(update={"source_file": str(path)})
    spec._located = located
    return spec


def load_suite_file(path: Path) -> SuiteSpec:
    located = load_located_yaml(path)
    spec = validate_located(SuiteSpec, located)
    return spec.model_copy(update={"source_file": str(path)})
