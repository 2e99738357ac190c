"""Options several commands share, declared once so their names, defaults and help agree."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

DEFAULT_RESULTS = Path("results")
# Every command's own settings, not only the root group's: click caches a command's help option the
# first time it is built, so a command invoked on its own (tests, scripts) would otherwise keep
# `--help` alone and `evalkit CMD -h` would depend on what ran before in the process.
CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"]}


def results_option(
    help_text: str = "Results folder (a store written by `evalkit run`).",
) -> Callable[[Any], Any]:
    """`--results DIR` (default ./results), passed to the command as `results_dir`."""
    return click.option(
        "--results",
        "results_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=DEFAULT_RESULTS,
        show_default=True,
        help=help_text,
    )


def task_dir_option() -> Callable[[Any], Any]:
    """`--task-dir DIR` (repeatable): extra folders of task YAML files, passed as `task_dir`."""
    return click.option(
        "--task-dir",
        multiple=True,
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        help="Extra folder of task YAML files (repeatable; also $EVALKIT_TASK_PATH).",
    )
