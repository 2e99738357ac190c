"""One page per model: its facts, every task it ran, its variants, its plots, and where results came from."""

from __future__ import annotations

import math
from collections import defaultdict

from evalkit.query import decode_curve, interval
from evalkit.results import MetricValue, RunRecord
from evalkit.site._data import SiteData, embed, relative
from evalkit.site._html import (
    Cell,
    Page,
    esc,
    facts_list,
    human_bytes,
    human_count,
    link_cell,
    number_cell,
    page,
    table,
    text_cell,
)

MAX_HEATMAPS = 6  # per page; more would make the page slow to open
_MAX_ERROR_CHARS = 500


def model_page(data: SiteData, fingerprint: str) -> Page:
    from evalkit import plots

    records = data.by_model[fingerprint]
    latest = data.latest_of_model(fingerprint)
    model = records[-1].model
    name = data.names[fingerprint]
    body = [
        facts_list(
            [
                ("spec name", model.name),
                ("fingerprint", model.fingerprint),
                ("backend", model.backend),
                ("source", model.source),
                ("architecture", model.architecture),
                ("family", model.family),
                ("parameters", f"{human_count(model.parameters)} ({model.parameters:,})"),
                ("dtype", model.dtype),
                ("quantization", model.quantization or "none"),
                ("size on disk", human_bytes(model.bytes_on_disk)),
                (
                    "context window",
                    None if model.context_window is None else f"{model.context_window:,} tokens",
                ),
                ("revision", model.revision),
                ("chat template", "yes" if model.chat_template else "no"),
            ]
        )
    ]
    body.append(_standing(data, fingerprint))
    body.append("<h2>Results</h2>\n")
    if latest:
        body.append(_results_table(data, latest))
    else:
        body.append('<p class="note">This model has no successful run.</p>\n')
    body.append(_failures(data, records))
    body.append(_variants(data, fingerprint))
    body.append("<h2>Plots</h2>\n")
    subset = [record for record in records if record.status == "ok"]
    body.append(embed(plots.accuracy_bars(subset, names=data.names, max_tasks=120), "plot-model-accuracy"))
    with_context = [record for record in latest if record.long_context is not None]
    for index, record in enumerate(with_context[:MAX_HEATMAPS]):
        body.append(embed(plots.heatmap_of(record, name), f"plot-needle-{index}"))
    if len(with_context) > MAX_HEATMAPS:
        body.append(
            f'<p class="note">{len(with_context) - MAX_HEATMAPS} more long-context tasks: '
            "see their task pages.</p>\n"
        )
    if any(decode_curve(record) for record in latest):
        body.append(embed(plots.efficiency_curves(subset, names=data.names), "plot-model-efficiency"))
    body.append(_provenance(records))
    return Page(data.model_files[fingerprint], page(f"Model {name}", "".join(body), depth=1, plots=True))


def _standing(data: SiteData, fingerprint: str) -> str:
    """Where the model stands on the leaderboard, in one sentence."""
    row = data.leaderboard_rows.get(fingerprint)
    if row is None or not isinstance(row.get("mean"), float) or math.isnan(row["mean"]):
        return ""
    parts = [f"mean {row['mean'] * 100:.1f}% over {row['tasks_in_mean']} task(s)"]
    rank = row.get("rank")
    if isinstance(rank, int | float) and not isinstance(rank, bool) and not math.isnan(rank):
        parts.append(f"rank {int(rank)} of {len(data.leaderboard_rows)}")
    fronts = [
        label
        for column, label in (("pareto_memory", "memory"), ("pareto_latency", "latency"))
        if row.get(column)
    ]
    if fronts:
        parts.append(f"on the Pareto front of accuracy against {' and '.join(fronts)}")
    link = f'<a href="{esc(relative("index.html", 1))}#leaderboard">Leaderboard</a>'
    return f'<p class="lead">{link}: {esc("; ".join(parts))}.</p>\n'


def _results_table(data: SiteData, latest: list[RunRecord]) -> str:
    rows = []
    for record in latest:
        # the stored metric, not primary_metric(): an overflowed perplexity shows as inf, not as missing
        metric = record.metrics.get(record.task.primary_metric)
        key = (record.model.fingerprint, record.task.name)
        samples = data.sample_files.get(key)
        rows.append(
            [
                link_cell(record.task.name, relative(data.task_files[record.task.name], 1)),
                text_cell(record.task.primary_metric),
                *_value_cells(metric),
                text_cell(_others(record)),
                link_cell("samples", relative(samples, 1)) if samples else text_cell(""),
                text_cell(record.finished_at),
                text_cell(record.run_id),
            ]
        )
    headers = [
        "task",
        "metric",
        "value",
        "95% CI",
        "n",
        "chance",
        "other metrics",
        "samples",
        "finished",
        "run",
    ]
    return table(headers, rows, table_id="results-table", filter_label="Filter tasks:")


def _value_cells(metric: MetricValue | None) -> list[Cell]:
    if metric is None or math.isnan(metric.value):  # NaN: a metric over no samples has no value
        return [number_cell(None, "")] * 4
    scale, digits = (100.0, 1) if metric.bounded else (1.0, 3)
    bounds = interval(metric)
    ci = "" if bounds is None else f"{bounds[0] * scale:.{digits}f} – {bounds[1] * scale:.{digits}f}"
    chance = "" if metric.chance is None else f"{metric.chance * scale:.{digits}f}"
    unit = " %" if metric.bounded else ""
    return [
        number_cell(metric.value, f"{metric.value * scale:.{digits}f}{unit}"),
        text_cell(ci, "num"),
        number_cell(float(metric.n), str(metric.n)),
        number_cell(metric.chance, chance),
    ]


def _others(record: RunRecord) -> str:
    """The record's secondary metrics, compactly: 'acc_norm 48.3%, perplexity 21.4'."""
    parts = []
    for metric_name, value in sorted(record.metrics.items()):
        if metric_name == record.task.primary_metric:
            continue
        if math.isnan(value.value):  # a metric over no samples has no value to show
            parts.append(f"{metric_name} n/a")
            continue
        parts.append(
            f"{metric_name} {value.value * 100:.1f}%" if value.bounded else f"{metric_name} {value.value:.3g}"
        )
    return ", ".join(parts)


def _failures(data: SiteData, records: list[RunRecord]) -> str:
    failed = [record for record in records if record.status == "error"]
    if not failed:
        return ""
    rows = []
    for record in reversed(failed):
        message = (record.error or "(no message recorded)").strip()[:_MAX_ERROR_CHARS]
        superseded = data.query.rerun_succeeded(record)
        rows.append(
            [
                link_cell(record.task.name, relative(data.task_files[record.task.name], 1)),
                text_cell(record.run_id),
                text_cell(record.finished_at),
                text_cell("yes" if superseded else "no"),
                text_cell(message, "message"),
            ]
        )
    headers = ["task", "run", "finished", "rerun succeeded", "error"]
    return f"<h2>Failed runs ({len(failed)})</h2>\n" + table(headers, rows, table_id="model-failures")


def _variants(data: SiteData, fingerprint: str) -> str:
    """The model's variant group (its full-precision reference and the other precisions), if any.

    Grouped as the quantization plot and the leaderboard's variants table group them
    (:func:`evalkit.query.variant_groups`), so the three never pair models differently.
    """
    from evalkit import plots

    members: list[str] = []
    for reference, variants in data.variant_groups.items():
        if fingerprint == reference or fingerprint in variants:
            members = [reference, *variants]
    siblings = [fp for fp in members if fp != fingerprint]
    if not siblings:
        return ""
    rows = []
    for fp in siblings:
        facts = data.by_model[fp][-1].model
        rows.append(
            [
                link_cell(data.names[fp], relative(data.model_files[fp], 1)),
                text_cell(facts.dtype),
                text_cell(facts.quantization or "none"),
                number_cell(float(facts.bytes_on_disk), human_bytes(facts.bytes_on_disk)),
            ]
        )
    group = [record for fp in (fingerprint, *siblings) for record in data.by_model[fp]]
    figure = plots.quantization_deltas(group, data.store, names=data.names)
    return (
        "<h2>Variants</h2>\n"
        "<p>Models of the same size and family at another precision, and their full-precision "
        "reference.</p>\n"
        + table(["model", "dtype", "quantization", "size on disk"], rows, table_id="variants-table")
        + embed(figure, "plot-model-quantization")
    )


def _provenance(records: list[RunRecord]) -> str:
    """Where the numbers came from; every distinct value across the model's records is shown."""
    latest = records[-1]
    values: dict[str, set[str]] = defaultdict(set)
    for record in records:
        values["evalkit version"].add(record.evalkit_version)
        values["git sha"].add(record.git_sha or "(not in a git checkout)")
        host = record.host
        values["host"].add(
            f"{host.hostname}: {host.cpu}, {host.cores} cores, {human_bytes(host.memory_bytes)} RAM, "
            f"accelerator {host.accelerator or 'none'}, {host.platform}, Python {host.python}"
        )
        for library, version in record.libraries.items():
            values[f"library {library}"].add(version)
    items: list[tuple[str, object]] = [
        ("fingerprint", latest.model.fingerprint),
        ("records", f"{len(records)} from {len({r.run_id for r in records})} run(s)"),
        ("first started", min(record.started_at for record in records)),
        ("last finished", max(record.finished_at for record in records)),
    ]
    items += [
        (label, "; ".join(sorted(found))) for label, found in sorted(values.items(), key=_provenance_order)
    ]
    return "<h2>Provenance</h2>\n" + facts_list(items)


def _provenance_order(item: tuple[str, set[str]]) -> tuple[bool, str]:
    return (item[0].startswith("library "), item[0])
