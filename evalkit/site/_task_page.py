"""One page per task: its definition and data source, every model's result, and its plots."""

from __future__ import annotations

from evalkit.paths import resolve_locator
from evalkit.results import RunRecord
from evalkit.site._data import SiteData, embed, relative
from evalkit.site._html import Page, esc, facts_list, link_cell, page, table, text_cell
from evalkit.site._model_page import MAX_HEATMAPS, _others, _value_cells

MAX_SPEC_BYTES = 64 * 1024
_SPEC_SUFFIXES = (".yaml", ".yml")
_MAX_ERROR_CHARS = 500


def task_page(data: SiteData, task: str) -> Page:
    from evalkit import plots

    records = data.by_task[task]
    latest = data.latest_of_task(task)
    facts = records[-1].task
    source = facts.source
    versions = len({record.task.fingerprint for record in records})
    # Some runners (lm-eval interop, ad-hoc tasks) record no spec file: use the latest that does.
    spec_file = next((r.task.spec_file for r in reversed(records) if r.task.spec_file), None)
    body = [
        "<h2>Definition</h2>\n",
        facts_list(
            [
                ("kind", facts.kind),
                ("primary metric", facts.primary_metric),
                ("few-shot examples", facts.num_fewshot),
                ("samples evaluated", facts.num_samples),
                (
                    "task fingerprint",
                    facts.fingerprint + (f" ({versions} versions in the store)" if versions > 1 else ""),
                ),
                ("spec file", spec_file),
            ]
        ),
        "<h3>Data source</h3>\n",
        facts_list(
            [
                ("origin", source.origin),
                ("format", source.format),
                ("location", source.location),
                ("split", source.split),
                ("hub dataset", source.hub_id),
                ("version", source.version),
                ("documents", f"{source.num_documents:,}"),
                ("content sha256", source.content_sha256),
            ]
        ),
        _spec_text(spec_file),
        "<h2>Results</h2>\n",
    ]
    body.append(
        _results(data, latest) if latest else '<p class="note">No model ran this task successfully.</p>\n'
    )
    body.append(_failures(data, records))
    body.append("<h2>Plots</h2>\n")
    body.append(embed(plots.accuracy_bars(latest, names=data.names), "plot-task-accuracy"))
    with_context = [record for record in latest if record.long_context is not None]
    if with_context:
        body.append(
            embed(plots.context_scores(with_context, names=data.names, task=task), "plot-task-context")
        )
        for index, record in enumerate(with_context[:MAX_HEATMAPS]):
            body.append(
                embed(plots.heatmap_of(record, data.names[record.model.fingerprint]), f"plot-needle-{index}")
            )
        if len(with_context) > MAX_HEATMAPS:
            body.append(
                f'<p class="note">Heatmaps of {len(with_context) - MAX_HEATMAPS} more models '
                "are on their model pages.</p>\n"
            )
    return Page(data.task_files[task], page(f"Task {task}", "".join(body), depth=1, plots=True))


def _spec_text(spec_file: str | None) -> str:
    """The task's YAML spec when the file the record names is on this machine (a built-in task's
    `evalkit.tasks:` locator, or an older record's path) and is a small YAML file.

    Only YAML files under a size cap are read: the path comes from a record, and a site must not
    publish whatever file a record happens to point at.
    """
    if not spec_file or not spec_file.endswith(_SPEC_SUFFIXES):
        return ""
    path = resolve_locator(spec_file)  # None for a user's `taskdir:` file: its folder is not known here
    if path is None:
        return ""
    try:
        if not path.is_file() or path.stat().st_size > MAX_SPEC_BYTES:
            return ""
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""
    return f'<h3>Spec file</h3>\n<pre class="spec">{esc(text)}</pre>\n'


def _results(data: SiteData, latest: list[RunRecord]) -> str:
    rows = []
    for record in latest:
        fingerprint = record.model.fingerprint
        samples = data.sample_files.get((fingerprint, record.task.name))
        rows.append(
            [
                link_cell(data.names[fingerprint], relative(data.model_files[fingerprint], 1)),
                *_value_cells(record.metrics.get(record.task.primary_metric)),
                text_cell(_others(record)),
                link_cell("samples", relative(samples, 1)) if samples else text_cell(""),
                text_cell(record.finished_at),
            ]
        )
    headers = ["model", "value", "95% CI", "n", "chance", "other metrics", "samples", "finished"]
    return table(headers, rows, table_id="task-results", filter_label="Filter models:")


def _failures(data: SiteData, records: list[RunRecord]) -> str:
    failed = [record for record in records if record.status == "error"]
    if not failed:
        return ""
    rows = [
        [
            link_cell(
                data.names[record.model.fingerprint], relative(data.model_files[record.model.fingerprint], 1)
            ),
            text_cell(record.run_id),
            text_cell(record.finished_at),
            text_cell((record.error or "(no message recorded)").strip()[:_MAX_ERROR_CHARS], "message"),
        ]
        for record in reversed(failed)
    ]
    return f"<h2>Failed runs ({len(failed)})</h2>\n" + table(
        ["model", "run", "finished", "error"], rows, table_id="task-failures"
    )
