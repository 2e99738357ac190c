"""Everything the pages share, computed once per build: selections, names, file names, plot embeds.

Indexing the records by model and by task up front keeps the build linear in the number of
records: a page (and its plots) sees only its own records, never the whole store again.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evalkit.query import StoreQuery, variant_groups
from evalkit.results import ResultsStore, RunRecord
from evalkit.site._html import plot_block, slug

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from evalkit.report import Leaderboard


@dataclass
class SiteData:
    records: list[RunRecord]  # in time order
    store: ResultsStore
    board: Leaderboard
    query: StoreQuery  # which record counts: the rule the leaderboard, plots and gate share
    names: dict[str, str] = field(default_factory=dict)  # model fingerprint -> display name
    latest: dict[tuple[str, str], RunRecord] = field(default_factory=dict)  # (fingerprint, task) -> latest ok
    by_model: dict[str, list[RunRecord]] = field(default_factory=dict)
    by_task: dict[str, list[RunRecord]] = field(default_factory=dict)
    model_files: dict[str, str] = field(default_factory=dict)  # fingerprint -> "models/<slug>.html"
    task_files: dict[str, str] = field(default_factory=dict)  # task -> "tasks/<slug>.html"
    sample_files: dict[tuple[str, str], str] = field(default_factory=dict)  # (fingerprint, task) -> path
    problems: list[str] = field(default_factory=list)  # unreadable sample logs met while building
    leaderboard_rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # fingerprint -> frame row
    variant_groups: dict[str, list[str]] = field(default_factory=dict)  # reference -> its variants

    @classmethod
    def collect(cls, records: list[RunRecord], store: ResultsStore, *, ranks: bool = True) -> SiteData:
        """Index ``records``; ``ranks`` adds the leaderboard's tie-group ranks (reads sample logs)."""
        from evalkit.report import build_leaderboard

        query = StoreQuery(records, store=store)
        ordered = list(query.records)
        board = build_leaderboard(query, ranks=ranks, store=store if ranks else None)
        data = cls(records=ordered, store=store, board=board, query=query)
        data.leaderboard_rows = {str(row["fingerprint"]): row for row in board.frame.to_dict("records")}
        data.names = query.names
        data.latest = query.latest_ok()
        data.variant_groups = variant_groups(ordered)
        by_model: dict[str, list[RunRecord]] = defaultdict(list)
        by_task: dict[str, list[RunRecord]] = defaultdict(list)
        for record in ordered:
            by_model[record.model.fingerprint].append(record)
            by_task[record.task.name].append(record)
        data.by_model = {fp: by_model[fp] for fp in sorted(by_model, key=lambda fp: (data.names[fp], fp))}
        data.by_task = {task: by_task[task] for task in sorted(by_task)}
        data.model_files = {fp: f"models/{slug(data.names[fp], fp)}.html" for fp in data.by_model}
        data.task_files = {task: f"tasks/{slug(task)}.html" for task in data.by_task}
        for (fingerprint, task), record in sorted(data.latest.items()):
            if record.samples_file is not None:
                name = f"{slug(data.names[fingerprint], fingerprint)}--{slug(task)}"
                data.sample_files[(fingerprint, task)] = f"samples/{name}.html"
        return data

    def latest_of_model(self, fingerprint: str) -> list[RunRecord]:
        """The model's result per task (the shared rule), by task name."""
        return self.query.latest_of_model(fingerprint)

    def latest_of_task(self, task: str) -> list[RunRecord]:
        """Each model's result on the task (the shared rule), in model order."""
        return self.query.latest_of_task(task)


def embed(figure: go.Figure, div_id: str, caption: str = "") -> str:
    """A figure as a site plot block (or its note, when it has nothing to show)."""
    from evalkit.plots import figure_json, figure_note

    note = figure_note(figure)
    return plot_block(None if note is not None else figure_json(figure), div_id, note, caption)


def relative(path: str, depth: int) -> str:
    """A root-relative site path as seen from a page ``depth`` folders down."""
    return "../" * depth + path
