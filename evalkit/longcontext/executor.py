"""The `long_context` task executor: load-time checks, catalogue lines, a preview, and the run."""

from __future__ import annotations

from pathlib import Path

from evalkit.backends import Backend
from evalkit.errors import EvalkitError, SpecError
from evalkit.kinds import CatalogueLine, ExecutionContext, TaskOutcome
from evalkit.longcontext.check import check_long_context
from evalkit.longcontext.runner import GENERATION_METRICS, RANKING_METRICS, build_grid, run_long_context_task
from evalkit.specs import LocatedYaml, LongContextSpec, TaskSpec


class LongContextExecutor:
    name = "long_context"

    def check(self, spec: TaskSpec) -> None:
        grid = _grid(spec)
        located = spec.located
        if located is None:  # built in code: check against the spec's own values
            where = Path(spec.source_file) if spec.source_file else Path.cwd() / spec.name
            located = LocatedYaml(where, spec.model_dump(mode="json"), {})
        check_long_context(grid, located)

    def prepare(self, spec: TaskSpec) -> None:
        return None  # the grid is fitted in each model's own tokenizer: nothing to load before a model

    def metrics(self, spec: TaskSpec) -> list[str]:
        names = GENERATION_METRICS if _grid(spec).mode == "generate" else RANKING_METRICS
        return [*names, "effective_context_length", "relative_effective_context_length"]

    def describe(self, spec: TaskSpec, *, count: bool) -> CatalogueLine:
        grid = _grid(spec)
        rows = len(grid.sweep.values) if grid.sweep else len(grid.depths)
        return CatalogueLine(str(rows * len(grid.lengths) * grid.samples), source_description(spec))

    def preview(self, spec: TaskSpec) -> list[str]:
        """One sample rendered for the fake model's byte tokenizer (a model's own tokenizer fits its own)."""
        from evalkit.backends import load_model
        from evalkit.longcontext.check import with_grid

        grid = _grid(spec)
        lines = [f"source: {source_description(spec)}"]
        middle = [grid.depths[len(grid.depths) // 2]]
        try:
            shown = build_grid(load_model("fake"), with_grid(spec, [2048], middle), limit=1)
        except EvalkitError as exc:
            return [*lines, f"(no sample to show: {exc})"]
        if not shown.cells:
            return [*lines, f"(no sample to show at 2048 bytes: {shown.skipped})"]
        cell = shown.cells[0]
        assert cell.fitted is not None
        lines += [
            "",
            "first sample at 2048 tokens of the fake model's byte tokenizer (lengths are fitted per "
            "model, in its own tokenizer):",
            cell.prompts[0],
        ]
        for probe in cell.fitted.rendered.probes:
            lines.append(f"answers: {list(probe.answers)}  distractors: {list(probe.distractors)}")
        return lines

    def run(self, backend: Backend, spec: TaskSpec, context: ExecutionContext) -> TaskOutcome:
        if context.beyond_window is not None:
            grid = _grid(spec).model_copy(update={"beyond_window": context.beyond_window})
            spec = spec.model_copy(update={"long_context": grid})
        return run_long_context_task(
            backend, spec, seed=context.seed, limit=context.limit, server=context.server
        )


def _grid(spec: TaskSpec) -> LongContextSpec:
    if spec.long_context is None:
        raise SpecError(f"{spec.where()}: kind long_context needs a long_context block")
    return spec.long_context


def source_description(spec: TaskSpec) -> str:
    from evalkit.longcontext.generators import get_generator

    grid = _grid(spec)
    generator = get_generator(grid.generator)
    where = f" in haystack {grid.haystack!r}" if generator.info.uses_haystack else ""
    rows = (
        f"{grid.sweep.param} {grid.sweep.values}"
        if grid.sweep
        else (f"depths {grid.depths}" if generator.info.uses_depth else "one row")
    )
    return f"generated: {grid.generator}{where}, seed {grid.seed}; {rows} x lengths {grid.lengths}"


LONG_CONTEXT = LongContextExecutor()
