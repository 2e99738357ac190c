"""`evalkit tasks list|show`: the task catalogue."""

from __future__ import annotations

import click


@click.group()
def tasks() -> None:
    """List and inspect tasks and suites."""


@tasks.command("list")
@click.option("--counts/--no-counts", default=True, help="Load each task's data to count its samples.")
def list_tasks(counts: bool) -> None:
    """Every task with its kind, sample count and data source, then the suites."""
    from evalkit.errors import EvalkitError
    from evalkit.specs import default_catalogue

    catalogue = default_catalogue()
    rows = []
    for name in catalogue.task_names:
        try:
            spec = catalogue.task(name)
        except EvalkitError as exc:
            rows.append((name, "?", "?", f"invalid: {exc}"))
            continue
        count, source = "-", _declared_source(spec)
        if counts:
            count, source = _count(spec)
        rows.append((name, spec.kind, count, source))
    width = max([len(r[0]) for r in rows] + [4])
    click.echo(f"{'task':<{width}}  {'kind':<16} {'samples':>8}  source")
    for name, kind, count, source in rows:
        click.echo(f"{name:<{width}}  {kind:<16} {count:>8}  {source}")
    click.echo("")
    click.echo("suites:")
    for name in catalogue.suite_names:
        suite = catalogue.suite(name)
        listed = ", ".join(e.task + (f"[{e.limit}]" if e.limit else "") for e in suite.tasks)
        click.echo(f"  {name}: {suite.summary} ({listed})")


@tasks.command("show")
@click.argument("name")
def show_task(name: str) -> None:
    """The resolved definition of task NAME, its data source and a rendered first sample."""
    import yaml

    from evalkit.kinds import get_kind
    from evalkit.kinds.prompt import build_context
    from evalkit.sources import load_documents
    from evalkit.specs import default_catalogue

    spec = default_catalogue().task(name)
    click.echo(f"# {spec.source_file}")
    click.echo(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False, allow_unicode=True).rstrip())
    if spec.kind == "efficiency":
        click.echo("\nsource: none (random-token prompts of exact lengths, drawn from the task's seed)")
        return
    if spec.long_context is not None:
        click.echo(f"\nsource: {_long_context_source(spec)}")
        _show_long_context_sample(spec)
        return
    loaded = load_documents(spec, "eval")
    source = loaded.source
    click.echo(f"\nsource: {source.origin} {source.format} {source.location} (split {source.split})")
    click.echo(f"samples: {source.num_documents}")
    if loaded.documents:
        kind = get_kind(spec.kind)
        doc = loaded.documents[0]
        context = build_context(spec, doc, [], kind.fewshot_answer) if kind.uses_prompt else ""
        sample = kind.prepare(spec, doc, context)
        click.echo("\nfirst sample, as sent to the model:")
        for request in sample.requests:
            click.echo("  " + repr(request))
        click.echo(f"target: {sample.target!r}")


def _declared_source(spec: object) -> str:
    hub = getattr(getattr(spec, "dataset", None), "hub", None)
    return f"{hub.path}" + (f"/{hub.name}" if hub.name else "") + f" [{hub.split}]" if hub else "local"


def _count(spec: object) -> tuple[str, str]:
    from evalkit.errors import EvalkitError
    from evalkit.sources import load_documents
    from evalkit.specs.task import TaskSpec

    assert isinstance(spec, TaskSpec)
    if spec.kind == "efficiency":
        return "-", "generated: random-token prompts (no dataset)"
    if spec.long_context is not None:
        grid = spec.long_context
        rows = len(grid.sweep.values) if grid.sweep else len(grid.depths)
        return str(rows * len(grid.lengths) * grid.samples), _long_context_source(spec)
    try:
        loaded = load_documents(spec, "eval")
    except EvalkitError as exc:
        return "-", f"unavailable: {exc}"
    s = loaded.source
    hub = f" (= {s.hub_id})" if s.hub_id else ""
    return str(s.num_documents), f"{s.origin}: {s.location} [{s.split}]{hub}"


def _long_context_source(spec: object) -> str:
    from evalkit.longcontext.generators import get_generator
    from evalkit.specs.task import TaskSpec

    assert isinstance(spec, TaskSpec) and spec.long_context is not None
    grid = spec.long_context
    generator = get_generator(grid.generator)
    where = f" in haystack {grid.haystack!r}" if generator.info.uses_haystack else ""
    rows = (
        f"{grid.sweep.param} {grid.sweep.values}"
        if grid.sweep
        else (f"depths {grid.depths}" if generator.info.uses_depth else "one row")
    )
    return f"generated: {grid.generator}{where}, seed {grid.seed}; {rows} x lengths {grid.lengths}"


def _show_long_context_sample(spec: object) -> None:
    """One sample rendered for the fake model's byte tokenizer (a model's own tokenizer fits its own)."""
    from evalkit.backends.fake import FakeBackend
    from evalkit.errors import EvalkitError
    from evalkit.longcontext.check import with_grid
    from evalkit.longcontext.runner import build_grid
    from evalkit.specs.task import TaskSpec

    assert isinstance(spec, TaskSpec) and spec.long_context is not None
    grid = spec.long_context
    middle = [grid.depths[len(grid.depths) // 2]]
    try:
        shown = build_grid(FakeBackend(), with_grid(spec, [2048], middle), limit=1)
    except EvalkitError as exc:
        click.echo(f"(no sample to show: {exc})")
        return
    if not shown.cells:
        click.echo(f"(no sample to show at 2048 bytes: {shown.skipped})")
        return
    cell = shown.cells[0]
    assert cell.fitted is not None
    click.echo(
        "\nfirst sample at 2048 tokens of the fake model's byte tokenizer (lengths are fitted per model, "
        "in its own tokenizer):"
    )
    click.echo(cell.prompts[0])
    for probe in cell.fitted.rendered.probes:
        click.echo(f"answers: {list(probe.answers)}  distractors: {list(probe.distractors)}")
