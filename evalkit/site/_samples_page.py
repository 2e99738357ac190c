"""The sample browser: what the model was asked, what it answered, and how each answer scored.

Prompts, targets and responses are dataset text and model output: untrusted, escaped, and
clipped per cell. Only the first MAX_SAMPLES of a log are parsed; the rest are only counted,
so a huge log costs a line count, not a page of megabytes.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from evalkit.results import RunRecord, SampleLog
from evalkit.site._data import SiteData, relative
from evalkit.site._html import Cell, Page, clip, esc, facts_list, number_cell, page, table, text_cell

MAX_SAMPLES = 200


class SampleLogError(Exception):
    """A per-sample log that cannot be shown; the page says so and the build reports it."""


def samples_page(data: SiteData, record: RunRecord, path: str) -> Page:
    fingerprint = record.model.fingerprint
    name = data.names[fingerprint]
    model_link = f'<a href="{esc(relative(data.model_files[fingerprint], 1))}">{esc(name)}</a>'
    task_link = f'<a href="{esc(relative(data.task_files[record.task.name], 1))}">{esc(record.task.name)}</a>'
    body = [
        f"<p>Model {model_link}, task {task_link}.</p>\n",
        facts_list(
            [
                ("record", record.record_id),
                ("run", record.run_id),
                ("finished", record.finished_at),
                ("primary metric", record.task.primary_metric),
            ]
        ),
    ]
    try:
        samples, total = read_first_samples(data.store.root, record, MAX_SAMPLES)
    except SampleLogError as exc:
        data.problems.append(str(exc))
        body.append(f'<p class="problems">The per-sample log cannot be shown: {esc(exc)}</p>\n')
    else:
        if total > len(samples):
            body.append(
                f'<p class="note">Showing the first {len(samples)} of {total:,} samples; the full log is '
                f"<code>{esc(record.samples_file)}</code> in the results store.</p>\n"
            )
        metrics = sorted({metric for sample in samples for metric in sample.scores})
        rows = [_row(index, sample, metrics) for index, sample in enumerate(samples, start=1)]
        headers = ["#", "sample", "prompt", "target", "response", *metrics, "extra"]
        body.append(table(headers, rows, table_id="samples-table", filter_label="Filter samples:"))
    title = f"Samples: {name} on {record.task.name}"
    return Page(path, page(title, "".join(body), depth=1, plots=False))


def read_first_samples(root: Path, record: RunRecord, limit: int) -> tuple[list[SampleLog], int]:
    """The first ``limit`` samples of the record's log and the number of samples in it."""
    assert record.samples_file is not None
    store_root = root.resolve()
    path = (store_root / record.samples_file).resolve()
    if not path.is_relative_to(store_root):  # the path comes from the record: keep it in the store
        raise SampleLogError(
            f"record {record.record_id}: samples file {record.samples_file!r} is outside the store"
        )
    samples: list[SampleLog] = []
    total = 0
    try:
        with path.open("rb") as handle:
            for line_no, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                total += 1
                if len(samples) < limit:
                    try:
                        samples.append(SampleLog.model_validate_json(raw))
                    except ValidationError as exc:
                        raise SampleLogError(f"{path}:{line_no}: not a sample log: {_first(exc)}") from None
    except OSError as exc:
        raise SampleLogError(
            f"{path}: per-sample log of record {record.record_id} unreadable: {exc.strerror or exc}"
        ) from None
    return samples, total


def _first(exc: ValidationError) -> str:
    error = exc.errors()[0]
    return f"{'.'.join(str(p) for p in error['loc']) or '(line)'}: {error['msg']}"


def _row(index: int, sample: SampleLog, metrics: list[str]) -> list[Cell]:
    cells = [
        number_cell(float(index), str(index)),
        text_cell(sample.sample_id),
        Cell(f"<pre>{clip(sample.prompt)}</pre>", None, "text"),
        Cell(_target(sample.target), None, "text short"),
        Cell(_response(sample.response), None, "text short"),
    ]
    for metric in metrics:
        score = sample.scores.get(metric)
        cells.append(number_cell(score, "" if score is None else f"{score:.3g}"))
    extra = json.dumps(sample.extra, sort_keys=True, ensure_ascii=False) if sample.extra else ""
    cells.append(Cell(f"<code>{clip(extra, 500)}</code>" if extra else "", None, "text"))
    return cells


def _target(target: str | list[str]) -> str:
    if isinstance(target, str):
        return f"<pre>{clip(target)}</pre>"
    return "<ul>" + "".join(f"<li>{clip(item, 500)}</li>" for item in target[:20]) + "</ul>"


def _response(response: str | list[float] | None) -> str:
    if response is None:
        return '<span class="missing">–</span>'
    if isinstance(response, str):
        return f"<pre>{clip(response)}</pre>"
    # Per-choice loglikelihoods of a multiple-choice sample.
    shown = ", ".join(f"{value:.2f}" for value in response[:50])
    return f'<span class="loglik">loglikelihoods: {esc(shown)}{"…" if len(response) > 50 else ""}</span>'
