"""The stores a gate judges, read whole: a line the gate cannot read is bad input, not a gap.

Which record a rule judges is decided by :mod:`evalkit.query` (``StoreQuery.evidence``), the rule
the leaderboard, the plots and the site share, so a verdict is always about a number they show.
"""

from __future__ import annotations

from pathlib import Path

from evalkit.errors import DataError
from evalkit.query import StoreQuery, load_query

_MAX_PROBLEMS_SHOWN = 3


def open_store(root: Path) -> StoreQuery:
    """The store at ``root``; DataError when it is missing or any line of it is unreadable."""
    query = load_query(root)  # DataError when the folder is missing
    problems = query.problems
    if problems:
        # A store the gate cannot fully read could hide the very run that fails: bad input.
        shown = "; ".join(str(problem) for problem in problems[:_MAX_PROBLEMS_SHOWN])
        more = len(problems) - _MAX_PROBLEMS_SHOWN
        raise DataError(
            f"{root}: {len(problems)} unreadable record line(s): {shown}"
            + (f" (and {more} more)" if more > 0 else "")
        )
    return query
