"""`evalkit gate`: judge a results store against a policy; the exit code is the CI verdict.

Exit codes: 0 every rule passed, 1 a rule failed, 2 bad input (policy, stores, output files).
All outputs are rendered from one GateReport, so none can disagree with the exit code.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from evalkit.cli._options import CONTEXT_SETTINGS
from evalkit.errors import DataError


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--policy",
    "policy_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Gate policy YAML (see docs/gates.md).",
)
@click.option(
    "--results",
    "results_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Results store to judge (e.g. the one this CI run wrote).",
)
@click.option(
    "--baseline",
    "baseline_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Results store to compare against; needed by no_regression and min_throughput_ratio rules.",
)
@click.option(
    "--junit", "junit_file", type=click.Path(dir_okay=False, path_type=Path), help="Write JUnit XML here."
)
@click.option(
    "--markdown",
    "markdown_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a markdown summary here (it is also appended to $GITHUB_STEP_SUMMARY when that is set).",
)
def gate(
    policy_file: Path,
    results_dir: Path,
    baseline_dir: Path | None,
    junit_file: Path | None,
    markdown_file: Path | None,
) -> None:
    """Check stored results against a gate policy: score floors, no significant regression
    against a baseline, throughput ratios and memory limits.

    \b
    Exit status: 0 all rules pass, 1 a rule fails, 2 bad input.
    Under GitHub Actions (GITHUB_ACTIONS=true) failures are also printed as ::error annotations.
    """
    from evalkit.gate import (
        evaluate_gate,
        github_annotations,
        load_policy,
        render_console,
        render_junit,
        render_markdown,
    )

    report = evaluate_gate(load_policy(policy_file), results_dir, baseline_dir)
    # Files first: if one cannot be written the run ends with exit 2, never a half-reported verdict.
    if junit_file is not None:
        _write(junit_file, render_junit(report))
    markdown = render_markdown(report)
    if markdown_file is not None:
        _write(markdown_file, markdown)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        _write(Path(step_summary), markdown, append=True)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        for line in github_annotations(report):
            click.echo(line)
    click.echo(render_console(report), nl=False)
    # SystemExit rather than ctx.exit: evalkit's main runs click in non-standalone mode, where
    # ctx.exit becomes a return value (see the leaderboard command).
    raise SystemExit(report.exit_code)


def _write(path: Path, text: str, *, append: bool = False) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a" if append else "w", encoding="utf-8") as handle:
            handle.write(text if not append else "\n" + text)
    except OSError as exc:
        raise DataError(f"{path}: cannot write: {exc.strerror or exc}") from None
