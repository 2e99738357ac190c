"""`evalkit plot`: export one named plot of a results store as a standalone HTML file.

The plot names are listed here (not imported from evalkit.plots) so that `--help` does
not import plotly or pandas; a test keeps the two lists equal.
"""

from __future__ import annotations

from pathlib import Path

import click

from evalkit.cli._options import CONTEXT_SETTINGS, results_option

PLOT_NAMES = ("accuracy", "context", "efficiency", "latency", "memory", "needle", "quantization")


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("name", type=click.Choice(PLOT_NAMES))
@results_option()
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="HTML file to write [default: plot-NAME.html].",
)
@click.option("--model", default=None, help="Only this model (name or fingerprint); needle needs one.")
@click.option("--task", default=None, help="Only this task; needle and context use it.")
def plot(name: str, results_dir: Path, out_file: Path | None, model: str | None, task: str | None) -> None:
    """Export the plot NAME as one HTML file that opens offline (plotly.js is inlined).

    \b
    accuracy      primary metric per task with 95% CIs, models side by side
    memory        mean accuracy vs peak memory (else size on disk), Pareto front
    latency       mean accuracy vs time per output token, Pareto front
    needle        needle-in-a-haystack heatmap of one model and task
    context       long-context score vs prompt length, with the threshold
    efficiency    time per token and memory vs context length per model
    quantization  accuracy change of quantized variants vs their float32 reference
    """
    from evalkit.paths import check_writable_file
    from evalkit.plots import figure_note, make_plot, write_standalone_html
    from evalkit.results import ResultsStore

    target = out_file if out_file is not None else Path(f"plot-{name}.html")
    check_writable_file(target, "--out")  # before reading the store, so no work ends unwritable
    store = ResultsStore(results_dir)
    records, problems = store.read()  # DataError (one line, exit 2) when the folder is missing
    figure = make_plot(name, records, store=store, model=model, task=task)
    write_standalone_html(figure, target, div_id=f"evalkit-{name}")
    note = figure_note(figure)
    click.echo(f"wrote {target}" + (f" (no data: {note})" if note else ""))
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    if problems:
        raise SystemExit(2)
