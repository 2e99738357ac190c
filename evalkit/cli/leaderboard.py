"""`evalkit leaderboard`: rank the models in a results store.

pandas is imported only when the command runs, so `evalkit --help` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

if TYPE_CHECKING:
    from evalkit.report import OutputFormat

# Mirrors evalkit.report.FORMATS (a test keeps them equal); importing that here would load pandas.
FORMATS = ("table", "markdown", "csv", "json")
_MACHINE_FORMATS = ("csv", "json")


@click.command()
@click.option(
    "--results",
    "results_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("results"),
    show_default=True,
    help="Results folder (a store written by `evalkit run`).",
)
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
    "--stderr/--no-stderr",
    "show_stderr",
    default=True,
    show_default=True,
    help="Show ± one standard error in table and markdown (csv and json always carry it).",
)
def leaderboard(results_dir: Path, output_format: str, keep_history: bool, show_stderr: bool) -> None:
    """Rank models by their stored results: one row per model, one column per task.

    Each task shows its primary metric; `mean` averages the bounded ones (accuracies).
    Unreadable lines in the store are reported as errors (exit code 2) and skipped;
    the store itself is never rewritten.
    """
    from evalkit.report import build_leaderboard, render_leaderboard, side_notes
    from evalkit.results import ResultsStore

    records, problems = ResultsStore(results_dir).read()  # DataError when the folder is missing
    machine = output_format in _MACHINE_FORMATS
    if records or machine:  # machine formats print an empty document rather than prose
        board = build_leaderboard(records, keep_history=keep_history)
        text = render_leaderboard(board, cast("OutputFormat", output_format), show_stderr=show_stderr)
        click.echo(text, nl=False)
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
