"""`evalkit tasks list|show`: the task catalogue."""

from __future__ import annotations

from pathlib import Path

import click

from evalkit.cli._options import CONTEXT_SETTINGS, task_dir_option


@click.group(context_settings=CONTEXT_SETTINGS)
def tasks() -> None:
    """List and inspect tasks and suites."""


@tasks.command("list", context_settings=CONTEXT_SETTINGS)
@click.option("--counts/--no-counts", default=True, help="Load each task's data to count its samples.")
@task_dir_option()
def list_tasks(counts: bool, task_dir: tuple[Path, ...]) -> None:
    """Every task with its kind, sample count and data source, then the suites."""
    from evalkit.errors import EvalkitError
    from evalkit.kinds import check_task
    from evalkit.specs import default_catalogue

    catalogue = default_catalogue(list(task_dir))
    rows = []
    for name in catalogue.task_names:
        try:
            spec = catalogue.task(name)
            line = check_task(spec).describe(spec, count=counts)
        except EvalkitError as exc:
            rows.append((name, "?", "?", f"invalid: {exc}"))
            continue
        rows.append((name, spec.kind, line.samples, line.source))
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


@tasks.command("show", context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@task_dir_option()
def show_task(name: str, task_dir: tuple[Path, ...]) -> None:
    """The resolved definition of task NAME, its data source and a rendered first sample."""
    import yaml

    from evalkit.kinds import check_task
    from evalkit.specs import default_catalogue

    spec = default_catalogue(list(task_dir)).task(name)
    executor = check_task(spec)
    click.echo(f"# {spec.source_file}")
    click.echo(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False, allow_unicode=True).rstrip())
    click.echo("")
    for line in executor.preview(spec):
        click.echo(line)
