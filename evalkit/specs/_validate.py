"""Turn a pydantic ValidationError on located YAML into one `file:line: message` SpecError.

Shared by every YAML-backed spec (tasks, suites, gate policies), so all of them report the
first problem at the line of the offending key, with "did you mean" for misspelt keys and
for unknown values of a discriminated union's tag (``kind: min_scor``). Pydantic's error
locations name union members (``rules.0.min_score.at_least``); those parts are not keys in
the file, so they are dropped before the location is looked up and shown.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from evalkit.errors import SpecError, did_you_mean
from evalkit.specs._yaml import LocatedYaml, Location

ModelT = TypeVar("ModelT", bound=BaseModel)


def validate_located(model: type[ModelT], located: LocatedYaml) -> ModelT:
    """Validate a YAML mapping against `model`; the first problem becomes a SpecError at file:line."""
    if not isinstance(located.data, dict):
        raise SpecError(f"{located.path}:1: expected a mapping at the top level")
    try:
        return model.model_validate(located.data)
    except ValidationError as exc:
        raise SpecError(describe_validation_error(model, located, exc)) from None


def describe_validation_error(model: type[BaseModel], located: LocatedYaml, exc: ValidationError) -> str:
    errors = exc.errors()
    error = _first_to_report(errors)
    path, owner = _yaml_path(model, tuple(error["loc"]))
    ctx = error.get("ctx") or {}
    kind = error["type"]
    if kind == "extra_forbidden":
        message = f"unknown key {_dotted(path)!r}"
        hint = did_you_mean(str(path[-1]), list(owner.model_fields)) if owner is not None and path else ""
        if hint:
            message += f"; did you mean {hint}?"
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        key = str(ctx.get("discriminator", "kind")).strip("'")
        path = (*path, key)
        if kind == "union_tag_not_found":
            message = f"{_dotted(path)}: missing required key {key!r}"
        else:
            tag = str(ctx.get("tag"))
            known = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
            hint = did_you_mean(tag, known)
            message = f"{_dotted(path)}: unknown {key} {tag!r}; " + (
                f"did you mean {hint}?" if hint else f"expected one of {', '.join(known)}"
            )
    else:
        # A validator's own message reads as written, without pydantic's "Value error, " label.
        message = f"{_dotted(path)}: {str(error['msg']).removeprefix('Value error, ')}"
    more = len(errors) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{located.where(path)}: {message}{suffix}"


def _first_to_report(errors: list[Any]) -> Any:
    """Pydantic's first error, unless it is a missing key that a misspelt one was meant to be.

    A typo (``at_lest``) yields "at_least: Field required" before "at_lest: extra"; the latter,
    with its suggestion, is what the author needs to read.
    """
    first = errors[0]
    if first["type"] == "missing":
        parent, name = tuple(first["loc"][:-1]), str(first["loc"][-1])
        for error in errors[1:]:
            loc = tuple(error["loc"])
            misspelt = error["type"] == "extra_forbidden" and loc[:-1] == parent
            if misspelt and did_you_mean(str(loc[-1]), [name]):
                return error
    return first


def _dotted(path: Location) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _yaml_path(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[Location, type[BaseModel] | None]:
    """Pydantic's error location as a key path in the file, and the model owning its last key.

    Walks the model's annotations alongside the location so that union-member tags, which
    pydantic inserts but the file never contains, can be recognised and dropped.
    """
    path: list[str | int] = []
    annotation: object = model
    owner: type[BaseModel] | None = None
    for part in loc:
        annotation = _unwrap(annotation)
        members = _union_members(annotation)
        if members and isinstance(part, str):
            chosen = _member_tagged(members, part)
            if chosen is not None:  # a tag pydantic added: not a key in the file
                annotation = chosen
                continue
            annotation = _unwrap(members[0]) if len(members) == 1 else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            owner = annotation
            field = annotation.model_fields.get(str(part))
            annotation = field.annotation if field is not None else None
        elif typing.get_origin(annotation) in (list, tuple, set, frozenset):
            args = typing.get_args(annotation)
            annotation = args[0] if args else None
        elif typing.get_origin(annotation) is dict:
            args = typing.get_args(annotation)
            annotation = args[1] if len(args) == 2 else None
        else:
            annotation = None
        path.append(part)
    return tuple(path), owner


def _unwrap(annotation: object) -> object:
    """Strip Annotated[...] and a trailing `| None`, which add no structure to walk."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    members = _union_members(annotation)
    if members and len(members) == 1:
        return _unwrap(members[0])
    return annotation


def _union_members(annotation: object) -> list[object]:
    """The non-None members of a Union (empty for anything else)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    return []


def _member_tagged(members: list[object], part: str) -> type[BaseModel] | None:
    """The union member that `part` names: by a Literal tag value, or by class name."""
    for member in members:
        member = _unwrap(member)
        if not (isinstance(member, type) and issubclass(member, BaseModel)):
            continue
        if part in member.model_fields:
            return None  # a real key of a member, not a tag
        if part == member.__name__:
            return member
        for field in member.model_fields.values():
            if typing.get_origin(field.annotation) is typing.Literal and part in typing.get_args(
                field.annotation
            ):
                return member
    return None
