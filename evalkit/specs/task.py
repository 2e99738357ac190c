"""Typed task and suite specifications, loaded from YAML with file:line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evalkit.errors import SpecError
from evalkit.specs._yaml import LocatedYaml, load_located_yaml
from evalkit.specs.dataset import DatasetSpec

KindName = Literal["multiple_choice", "loglikelihood", "generate", "perplexity"]


class GenerationSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stop: list[str] = Field(default_factory=lambda: ["\n\n"])
    max_tokens: int = Field(default=64, ge=1)


class AnswerSpec(BaseModel):
    """How a generated answer is extracted and compared with the references."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    regex: str | None = Field(default=None, description="first capture group (or whole match) is the answer")
    ignore_case: bool = True
    ignore_punctuation: bool = False
    strip: bool = True


class TaskSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.\-]*$")
    kind: KindName
    summary: str = ""
    dataset: DatasetSpec
    preprocess: str | None = Field(default=None, description="registered preprocessor name")
    template: str = Field(default="{query}", description="str.format template over the document's fields")
    instruction: str = Field(default="", description="prepended once, before the few-shot examples")
    target_delimiter: str = " "
    fewshot_delimiter: str = "\n\n"
    num_fewshot: int = Field(default=0, ge=0)
    fewshot_seed: int = 1234
    metrics: list[str] | None = None
    generation: GenerationSpec = Field(default_factory=GenerationSpec)
    answer: AnswerSpec = Field(default_factory=AnswerSpec)
    tags: list[str] = Field(default_factory=list)
    published: dict[str, float] = Field(
        default_factory=dict, description="reference scores, e.g. {'smollm2-135m/acc_norm': 0.5}"
    )

    source_file: str | None = Field(default=None, exclude=True)


class SuiteEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str
    limit: int | None = Field(default=None, ge=1)
    num_fewshot: int | None = Field(default=None, ge=0)


class SuiteSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    suite: str
    summary: str = ""
    tasks: list[SuiteEntry] = Field(min_length=1)

    source_file: str | None = Field(default=None, exclude=True)


def load_task_file(path: Path) -> TaskSpec:
    located = load_located_yaml(path)
    spec = _validate(TaskSpec, located)
    assert isinstance(spec, TaskSpec)
    return spec.model_copy(update={"source_file": str(path)})


def load_suite_file(path: Path) -> SuiteSpec:
    located = load_located_yaml(path)
    spec = _validate(SuiteSpec, located)
    assert isinstance(spec, SuiteSpec)
    return spec.model_copy(update={"source_file": str(path)})


def _validate(model: type[BaseModel], located: LocatedYaml) -> BaseModel:
    if not isinstance(located.data, dict):
        raise SpecError(f"{located.path}:1: expected a mapping at the top level")
    try:
        return model.model_validate(located.data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error["loc"])
        field = ".".join(str(p) for p in loc) or "(top level)"
        if error["type"] == "extra_forbidden":
            message = f"unknown key {field!r}"
            hint = _suggest_key(model, loc)
            if hint:
                message += f"; did you mean {hint}?"
        else:
            message = f"{field}: {error['msg']}"
        more = len(exc.errors()) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise SpecError(f"{located.where(loc)}: {message}{suffix}") from None


def _suggest_key(model: type[BaseModel], loc: tuple[object, ...]) -> str:
    from evalkit.errors import did_you_mean

    current: type[BaseModel] | None = model
    for part in loc[:-1]:
        if isinstance(part, int):  # a list index: the element type was already unwrapped
            continue
        if current is None or not isinstance(part, str) or part not in current.model_fields:
            return ""
        annotation = current.model_fields[part].annotation
        current = _model_in(annotation)
    if current is None:
        return ""
    return did_you_mean(str(loc[-1]), list(current.model_fields))


def _model_in(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
