"""Reports over stored run records: the leaderboard view and its text forms.

Importing this package imports pandas; the CLI imports it only when a report command runs.
"""

from evalkit.report._render import FORMATS, OutputFormat, render_leaderboard, side_notes
from evalkit.report.leaderboard import (
    Leaderboard,
    MetricColumn,
    build_leaderboard,
    error_rows,
    leaderboard_frame,
)

__all__ = [
    "FORMATS",
    "Leaderboard",
    "MetricColumn",
    "OutputFormat",
    "build_leaderboard",
    "error_rows",
    "leaderboard_frame",
    "render_leaderboard",
    "side_notes",
]
