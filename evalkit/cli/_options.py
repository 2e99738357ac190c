"""Options several commands share, declared once so their names, defaults and help agree."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

DEFAULT_RESULTS = Path("results")


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
