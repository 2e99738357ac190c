"""`evalkit run`: evaluate models on tasks and append run records to the results store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click

from evalkit.cli._options import CONTEXT_SETTINGS, results_option, task_dir_option

if TYPE_CHECKING:
    from evalkit.runner.cluster import ClusterOptions


def _batch_size(ctx: click.Context, param: click.Parameter, value: str) -> int | Literal["auto"]:
    """`--batch-size`: a whole number of at least 1, or `auto`."""
    text = value.strip().lower()
    if text == "auto":
        return "auto"
    if text.isascii() and text.isdigit() and int(text) >= 1:
        return int(text)
    raise click.BadParameter(f"{value!r} is not a whole number of at least 1 or 'auto'", ctx, param)


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--model",
    "-m",
    "models",
    multiple=True,
    required=True,
    help="Model spec; repeat for several. E.g. smollm2-135m, gemma3-270m, hf:PATH, gguf:FILE, fake.",
)
@click.option(
    "--tasks", "-t", default=None, help="Comma-separated task names (lmeval:NAME runs an lm-eval task)."
)
@click.option(
    "--suite",
    "-s",
    "suites",
    multiple=True,
    help="A named suite of tasks, e.g. quick; repeat to run several in one go (each model loads once).",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most N samples per task.")
@click.option(
    "--seed",
    type=int,
    default=None,
    help="The seed of each task's randomness: few-shot sampling, long-context generators, efficiency "
    "prompts (default: each task's own). The record says the seed each task used.",
)
@click.option("--num-fewshot", type=click.IntRange(min=0), default=None, help="Override few-shot count.")
@click.option(
    "--batch-size",
    "-b",
    metavar="N|auto",
    default="16",
    callback=_batch_size,
    show_default=True,
    help="Requests per batch, or 'auto': the largest batch that fits, found by trying (from 64 on a "
    "CPU, 512 on a GPU, halving on out of memory; kept for the rest of the run). A batch that runs "
    "out of memory is retried at half the size, down to 1.",
)
@results_option("Results folder to append run records to.")
@click.option("--no-cache", is_flag=True, help="Ignore and do not fill the response cache.")
@task_dir_option()
@click.option(
    "--beyond-window",
    type=click.Choice(["skip", "run"]),
    default=None,
    help="Long-context cells longer than the model's window: skip them (recorded) or run them "
    "(marked beyond-window) [default: each task's own, skip].",
)
@click.option(
    "--force",
    is_flag=True,
    help="Rerun model x task pairs whose identical record is already stored (by default they are "
    "skipped, so rerunning an interrupted command finishes it).",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where requests run: this process, or Ray workers (the options below; records are identical).",
)
@click.option(
    "--address", default=None, help="Ray: a cluster's HOST:PORT [default: a local Ray for this run]."
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Ray: workers (model replicas) per model [default: as many as the cluster's CPUs/GPUs allow].",
)
@click.option(
    "--cpus-per-worker",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Ray: CPUs each worker reserves (its model computes with that many threads).",
)
@click.option(
    "--gpus-per-worker",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Ray: GPUs each worker reserves (fractions share one).",
)
@click.option(
    "--shards", type=click.IntRange(min=1), default=None, help="Ray: units per task [default: --workers]."
)
@click.option(
    "--unit-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=3600.0,
    show_default=True,
    help="Ray: seconds one unit may take before its worker is replaced and the unit sent again "
    "(a worker's model load may take this long, and at least 120 s).",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Ray: times a unit is sent again after its worker died; then the task fails.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def run(
    models: tuple[str, ...],
    tasks: str | None,
    suites: tuple[str, ...],
    limit: int | None,
    seed: int | None,
    num_fewshot: int | None,
    batch_size: int | Literal["auto"],
    results_dir: Path,
    no_cache: bool,
    task_dir: tuple[Path, ...],
    beyond_window: Literal["skip", "run"] | None,
    force: bool,
    executor: Literal["local", "ray"],
    address: str | None,
    workers: int | None,
    cpus_per_worker: float,
    gpus_per_worker: float,
    shards: int | None,
    unit_timeout: float,
    retries: int,
    quiet: bool,
) -> None:
    """Evaluate every MODEL on every task and store one record per pair.

    \b
    Examples:
      evalkit run -m smollm2-135m --suite quick
      evalkit run -m smollm2-135m -m gemma3-270m -t arc_easy,hellaswag --limit 100
      evalkit run -m fake -t arc_easy --limit 5 --results /tmp/try
    """
    from evalkit.errors import StoreWriteError
    from evalkit.results.schema import RunRecord
    from evalkit.runner import EvalConfig, evaluate
    from evalkit.specs import default_catalogue

    stored: list[RunRecord] = []  # evaluate() reports a record only once the store holds it whole

    def report(record: RunRecord) -> None:
        stored.append(record)
        if record.status == "ok":
            primary = record.metrics.get(record.task.primary_metric)
            shown = f"{record.task.primary_metric}={primary.value:.4f}" if primary else ""
            if primary is not None and primary.ci95 is not None:  # the stored interval (Wilson for shares)
                low, high = primary.ci95
                shown += f" (95% CI {low:.4f}-{high:.4f})"
            if record.long_context is not None:
                effective = record.long_context.effective_context_length
                shown += f"  effective context {effective if effective is not None else '< shortest'}"
            click.echo(
                f"{record.model.name:<24} {record.task.name:<18} n={record.task.num_samples:<5} "
                f"{shown}  ({record.duration_s:.1f}s)"
            )
        else:
            click.echo(f"{record.model.name:<24} {record.task.name:<18} FAILED: {record.error}", err=True)

    config = EvalConfig(
        limit=limit,
        seed=seed,
        batch_size=batch_size,
        num_fewshot=num_fewshot,
        use_cache=not no_cache,
        show_progress=not quiet and sys.stderr.isatty(),
        results_dir=results_dir,
        beyond_window=beyond_window,
        force=force,
        cluster=_cluster(executor),
    )

    def reused(record: RunRecord) -> None:
        click.echo(
            f"{record.model.name:<24} {record.task.name:<18} already stored ({record.finished_at}, "
            f"record {record.record_id[:8]}); --force reruns it"
        )

    task_names = tasks.split(",") if tasks else None
    try:
        summary = evaluate(
            list(models),
            task_names,
            suite=list(suites),
            config=config,
            catalogue=default_catalogue(list(task_dir)),
            on_record=report,
            on_reused=reused,
        )
    except StoreWriteError:
        # The run stops (a full disk fails every later write too); say truly what is stored, then
        # main() prints the one-line reason and exits 1.
        click.echo(f"stored {len(stored)} record(s) in {results_dir}/ before a write failed")
        raise
    click.echo(f"stored {len(summary.records)} record(s) in {results_dir}/")
    if summary.failed:
        for record in summary.failed:
            click.echo(f"error: {record.model.name} × {record.task.name}: {record.error}", err=True)
        raise SystemExit(summary.exit_code)


_RAY_ONLY = ("address", "workers", "cpus_per_worker", "gpus_per_worker", "shards", "unit_timeout", "retries")


def _cluster(executor: Literal["local", "ray"]) -> ClusterOptions | None:
    """The Ray options (None for the local executor, which takes none of them)."""
    from evalkit.runner.cluster import ClusterOptions

    if executor == "local":
        ctx = click.get_current_context()
        for name in _RAY_ONLY:
            if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT:
                raise click.UsageError(f"--{name.replace('_', '-')} needs --executor ray", ctx)
        return None
    given = click.get_current_context().params  # the options as click parsed them
    options = {name: given[name] for name in _RAY_ONLY}
    options["unit_timeout_s"] = options.pop("unit_timeout")
    return ClusterOptions(**options)
