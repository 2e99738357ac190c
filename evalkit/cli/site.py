"""`evalkit site`: write the static leaderboard site for a results store.

pandas and plotly are imported only when the command runs, so `evalkit --help` stays instant.
"""

from __future__ import annotations

from pathlib import Path

import click

from evalkit.cli._options import CONTEXT_SETTINGS, results_option


@click.command(context_settings=CONTEXT_SETTINGS)
@results_option()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("site"),
    show_default=True,
    help="Folder to write; must be empty or a site written before by this command.",
)
@click.option(
    "--ranks/--no-ranks",
    default=True,
    show_default=True,
    help="Tie-group ranks from paired tests; they read every shown record's per-sample log.",
)
def site(results_dir: Path, out_dir: Path, ranks: bool) -> None:
    """Write a static leaderboard site: open OUT/index.html, or serve OUT from any static host.

    Pages: a sortable, filterable leaderboard with plots, one page per model and per task, and a
    sample browser per model and task. No server and no network: plotly.js is bundled. The same
    results give byte-identical files. Unreadable lines in the store are reported (exit code 2)
    and the site is built from the readable records.
    """
    from evalkit.paths import check_writable_dir
    from evalkit.site import build_site

    check_writable_dir(out_dir, "--out")  # before reading the store, so no work ends unwritable
    report = build_site(
        results_dir, out_dir, ranks=ranks
    )  # DataError (one line, exit 2) when the store is missing
    click.echo(f"wrote {report.pages} pages to {report.out} (open {report.out / 'index.html'})")
    for problem in report.problems:
        click.echo(f"error: {problem}", err=True)
    if report.problems:
        # SystemExit, not ctx.exit: evalkit's non-standalone main would drop ctx.exit's status.
        raise SystemExit(2)
