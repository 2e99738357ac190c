"""`evalkit compare`: are two models' results different, task by task, on the samples they share?

pandas and scipy are imported only when the command runs, so `evalkit --help` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from evalkit.cli._options import CONTEXT_SETTINGS, results_option

if TYPE_CHECKING:
    from evalkit.report import CompareFormat

# Mirrors evalkit.report.COMPARE_FORMATS (a test keeps them equal); importing that here would load pandas.
FORMATS = ("table", "markdown", "json")


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("a")
@click.argument("b")
@results_option("Results folder to find A (and B) in.")
@click.option(
    "--results-b",
    "results_b_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Another results folder to find B in (default: the --results folder).",
)
@click.option("--task", metavar="NAME", help="Compare on this task only.")
@click.option(
    "--metric", metavar="NAME", help="Per-sample score to compare (default: each task's primary metric)."
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="table for a terminal, markdown for GitHub, json for programs.",
)
def compare(
    a: str,
    b: str,
    results_dir: Path,
    results_b_dir: Path | None,
    task: str | None,
    metric: str | None,
    output_format: str,
) -> None:
    """Compare B against A on every task both have, with paired tests on their shared samples.

    A and B are model names (their latest result per task), run ids (RUN:MODEL when the run
    evaluated several models) or record ids. Per task: the difference B-A on the samples both
    were scored on (matched by sample id), its 95% interval and a two-sided p-value from
    McNemar's exact test (0/1 scores) or a paired bootstrap (other scores).
    """
    from evalkit.report import compare_models, render_comparison, select_records
    from evalkit.results import ResultsStore

    store_a = ResultsStore(results_dir)
    store_b = ResultsStore(results_b_dir) if results_b_dir is not None else store_a
    records_a, problems = store_a.read()  # DataError when the folder is missing
    records_b, problems_b = store_b.read() if store_b is not store_a else (records_a, [])
    comparison = compare_models(
        select_records(store_a, records_a, a), select_records(store_b, records_b, b), task=task, metric=metric
    )
    click.echo(render_comparison(comparison, cast("CompareFormat", output_format)), nl=False)
    # As leaderboard, site, plot and gate do: an unreadable line could hide the very record that
    # matters, so the comparison is shown but the exit code says the store needs fixing.
    for problem in [*problems, *problems_b]:
        click.echo(f"error: {problem}", err=True)
    if problems or problems_b:
        raise SystemExit(2)
