"""Load-time checks of a `long_context` block that need the generator registry (file:line errors).

Pydantic checks the block's own shape; this checks what depends on the chosen generator: its name,
its parameters (an unknown one is named with a suggestion), the swept parameter, and the haystack
file (it must exist and hold text). Everything fails before any model is loaded.
"""

from __future__ import annotations

import string
from typing import Any

from pydantic import BaseModel, ValidationError

from evalkit.errors import SpecError, UnknownNameError, did_you_mean
from evalkit.specs import LocatedYaml, LongContextSpec, TaskSpec

TEMPLATE_FIELDS = frozenset({"instruction", "context", "question"})


def check_long_context(spec: LongContextSpec, located: LocatedYaml) -> None:
    from evalkit.longcontext.generators import get_generator
    from evalkit.longcontext.haystack import HaystackError, make_haystack

    block = ("long_context",)
    check_template(spec.template, located.where((*block, "template")))
    try:
        generator = get_generator(spec.generator)
    except UnknownNameError as exc:
        raise SpecError(f"{located.where((*block, 'generator'))}: {exc}") from None
    params = generator_params(generator.params_model, spec.params, located)
    if spec.sweep is not None:
        sweepable = list(generator.info.sweepable)
        if spec.sweep.param not in sweepable:
            hint = did_you_mean(spec.sweep.param, sweepable)
            offered = (
                f"; did you mean {hint}?"
                if hint
                else f"; {spec.generator} can sweep: {sweepable or 'nothing'}"
            )
            raise SpecError(
                f"{located.where((*block, 'sweep', 'param'))}: cannot sweep {spec.sweep.param!r}{offered}"
            )
        for value in spec.sweep.values:  # every swept value must itself be a valid parameter set
            _validate(generator.params_model, {**params, spec.sweep.param: value}, located, (*block, "sweep"))
    if generator.info.uses_haystack:
        try:
            make_haystack(spec.haystack, located.path.parent)
        except HaystackError as exc:
            raise SpecError(f"{located.where((*block, 'haystack'))}: haystack: {exc}") from None
    if not generator.info.uses_depth and "depths" in (located.data.get("long_context") or {}):
        raise SpecError(
            f"{located.where((*block, 'depths'))}: {spec.generator} has no needle depth; remove depths"
        )


def generator_params(
    model: type[BaseModel], params: dict[str, object], located: LocatedYaml
) -> dict[str, object]:
    _validate(model, params, located, ("long_context", "params"))
    return dict(params)


def _validate(
    model: type[BaseModel], params: dict[str, object], located: LocatedYaml, where: tuple[str, ...]
) -> None:
    problem = param_problem(model, params)
    if problem is not None:
        key, message = problem
        place = located.where((*where, key)) if key else located.where(where)
        raise SpecError(f"{place}: {message}")


def param_problem(model: type[BaseModel], params: dict[str, object]) -> tuple[str, str] | None:
    """(the offending key, a one-line message) when `params` do not fit the generator, else None."""
    try:
        model.model_validate(params)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0]) if error["loc"] else ""
        if error["type"] == "extra_forbidden":
            hint = did_you_mean(key, list(model.model_fields))
            known = ", ".join(model.model_fields)
            tail = f"; did you mean {hint}?" if hint else f"; known: {known}"
            return key, f"unknown generator parameter {key!r}{tail}"
        return key, f"generator parameter {key!r}: {error['msg']}" if key else str(error["msg"])
    return None


def with_grid(
    spec: TaskSpec,
    lengths: list[int] | None,
    depths: list[float] | None,
    params: dict[str, Any] | None = None,
    sweep: list[int] | None = None,
) -> TaskSpec:
    """`spec` with a suite entry's overrides applied, checked as if written in the task file."""
    if lengths is None and depths is None and params is None and sweep is None:
        return spec
    from evalkit.longcontext.generators import get_generator

    where = spec.source_file or spec.name
    grid = spec.long_context
    if grid is None:
        raise SpecError(f"{where}: lengths/depths/params/sweep overrides apply to long_context tasks only")
    if sweep is not None and grid.sweep is None:
        raise SpecError(f"{where}: a suite gives sweep values, but the task sweeps nothing")
    model = get_generator(grid.generator).params_model
    merged = {**grid.params, **(params or {})}
    checks = [("params override", merged)] if params is not None else []
    if sweep is not None and grid.sweep is not None:
        checks += [(f"sweep value {value}", {**merged, grid.sweep.param: value}) for value in sweep]
    for what, candidate in checks:
        problem = param_problem(model, candidate)
        if problem is not None:
            raise SpecError(f"{where}: a suite's {what}: {problem[1]}")
    update: dict[str, object] = {"params": merged}
    if sweep is not None and grid.sweep is not None:
        update["sweep"] = {"param": grid.sweep.param, "values": sweep}
    if lengths is not None:
        update["lengths"] = lengths
    if depths is not None:
        update["depths"] = depths
    try:
        checked = LongContextSpec.model_validate({**grid.model_dump(), **update})
    except ValueError as exc:
        raise SpecError(f"{where}: a suite's override: {exc}") from None
    return spec.model_copy(update={"long_context": checked})


def check_template(template: str, where: str) -> None:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise SpecError(f"{where}: long_context.template is not a valid format string: {exc}") from None
    unknown = names - TEMPLATE_FIELDS
    if unknown:
        raise SpecError(
            f"{where}: long_context.template uses {sorted(unknown)}; it may use {sorted(TEMPLATE_FIELDS)}"
        )
    if "context" not in names or "question" not in names:
        raise SpecError(f"{where}: long_context.template must contain {{context}} and {{question}}")
