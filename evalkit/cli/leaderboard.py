"""`evalkit leaderboard`: rank the models in a results store.

pandas is imported only when the command runs, so `evalkit --help` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from evalkit.cli._options import CONTEXT_SETTINGS, results_option

if TYPE_CHECKING:
    from evalkit.report import OutputFormat
    from evalkit.results import ResultsStore, RunRecord

# Mirrors evalkit.report.FORMATS (a test keeps them equal); importing that here would load pandas.
FORMATS = ("table", "markdown", "csv", "json")
_MACHINE_FORMATS = ("csv", "json")


@click.command(context_settings=CONTEXT_SETTINGS)
@results_option()
@click.option(
    "--format",
    "output_format",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="table for a terminal, markdown for GitHub, csv/json (full precision, stderr and n) for programs.",
)
@click.option(
    "--all",
    "keep_history",
    is_flag=True,
    help="One row per model and run, instead of each model's latest result per task.",
)
@click.option(
    "--suite",
    "suite_name",
    metavar="NAME",
    help="Only the tasks of this suite (see `evalkit tasks list`); the mean then covers those tasks.",
)
@click.option(
    "--normalized/--raw-only",
    default=True,
    show_default=True,
    help="Add chance-normalized scores, (score - chance) / (1 - chance), where chance levels are stored.",
)
@click.option(
    "--ranks/--no-ranks",
    default=True,
    show_default=True,
    help="Rank with tie groups from paired tests on the per-sample logs (reads one log per shown result).",
)
@click.option(
    "--ci/--no-ci",
    "show_ci",
    default=True,
    show_default=True,
    help="Show the 95% interval (± or -below/+above) in table and markdown (csv and json always carry "
    "the bounds).",
)
@click.option(
    "--wide",
    is_flag=True,
    help="table: one row per model and a column per figure (the default fits 100 columns: a section "
    "per axis, tasks as rows when there are fewer models than tasks).",
)
def leaderboard(
    results_dir: Path,
    output_format: str,
    keep_history: bool,
    suite_name: str | None,
    normalized: bool,
    ranks: bool,
    show_ci: bool,
    wide: bool,
) -> None:
    """Rank models by their stored results: one row per model, one column per task.

    Each task shows its primary metric (and its chance-normalized score); `mean` averages the
    bounded ones (accuracies). Models share a rank unless a paired test on the samples they
    share finds them different (p < 0.05). Unreadable lines in the store are reported as
    errors (exit code 2) and skipped; the store itself is never rewritten.
    """
    from evalkit.report import build_leaderboard, render_leaderboard, side_notes
    from evalkit.results import ResultsStore

    tasks = None
    if suite_name is not None:
        from evalkit.specs import default_catalogue

        tasks = [entry.task for entry in default_catalogue().suite(suite_name).tasks]
    store = ResultsStore(results_dir)
    records, problems = store.read()  # DataError when the folder is missing
    machine = output_format in _MACHINE_FORMATS
    if records or machine:  # machine formats print an empty document rather than prose
        board = build_leaderboard(
            records, keep_history=keep_history, tasks=tasks, normalized=normalized, ranks=ranks, store=store
        )
        if suite_name is not None and not machine:
            click.echo(f"Suite {suite_name}: {', '.join(tasks or [])}\n")
        text = render_leaderboard(board, cast("OutputFormat", output_format), show_ci=show_ci, wide=wide)
        click.echo(text, nl=False)
        if not machine and not keep_history:
            click.echo(_variants_section(records, store, markdown=output_format == "markdown"), nl=False)
        if machine:  # their output is rows only; notes and failed runs must not vanish
            for line in side_notes(board):
                click.echo(line, err=True)
    if not records:
        if problems:
            click.echo(f"no readable run records in {results_dir}", err=machine)
        else:
            click.echo(f"no run records in {results_dir} yet; `evalkit run` stores them there", err=machine)
    # Printed last so they are what the user sees; exit 2 like every other user-fixable error.
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    if problems:
        # SystemExit rather than ctx.exit: click's non-standalone mode (used by evalkit's main)
        # turns ctx.exit into a return value and the status would be lost.
        raise SystemExit(2)


def _variants_section(records: list[RunRecord], store: ResultsStore, *, markdown: bool) -> str:
    """Each quantized variant's change against its full-precision reference, with paired CIs."""
    from evalkit.query import StoreQuery
    from evalkit.report import render_variant_deltas, variant_deltas

    query = StoreQuery(records, store=store)
    return render_variant_deltas(variant_deltas(query, store), query.names, markdown)
