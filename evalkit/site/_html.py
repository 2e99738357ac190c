"""HTML building blocks: escaping, the page frame, tables, plot embeds and file names.

Everything a record holds (model names, task names, prompts, responses, error messages) is
untrusted text: it is written only through :func:`esc` (element text and attribute values) or
:func:`script_json` (data inside a ``<script>`` element), never pasted raw. Pages carry a
Content-Security-Policy that allows scripts from the site's own files only, so an escaping bug
would still not run an inline script or an ``onerror`` handler.
"""

from __future__ import annotations

import hashlib
import html
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from evalkit import __version__

_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'none'; base-uri 'none'; form-action 'none'"
)
_SLUG_CHARS = 40
_HASH_CHARS = 10
MAX_TEXT_CHARS = 2000  # per sample-browser cell: long-context prompts run to megabytes


def esc(value: object) -> str:
    """Text for element content or a quoted attribute value."""
    return html.escape(str(value), quote=True)


def script_json(text: str) -> str:
    """JSON text made safe inside ``<script>`` (the same escaping the plots use)."""
    from evalkit.plots import escape_for_script

    return escape_for_script(text)


def slug(name: str, key: str | None = None) -> str:
    """A file-name-safe, readable name plus a short hash of ``key`` (default: the name).

    The hash keeps names that differ only in punctuation or case apart ("A/B" and "a-b"), and
    the slug part is ASCII letters, digits and '-' only, so no name can climb out of its folder.
    """
    readable = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:_SLUG_CHARS].strip("-") or "item"
    digest = hashlib.sha256((key if key is not None else name).encode("utf-8")).hexdigest()[:_HASH_CHARS]
    return f"{readable}-{digest}"


def clip(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """Escaped text, cut at ``limit`` characters with a note saying how much was left out."""
    if len(text) <= limit:
        return esc(text)
    return f'{esc(text[:limit])}<span class="more">… ({len(text) - limit:,} more characters)</span>'


@dataclass(frozen=True)
class Page:
    """One file of the site: where it goes, relative to the site root, and what it holds."""

    path: str  # "index.html", "models/x.html"
    html: str


def page(title: str, body: str, *, depth: int, plots: bool, footer: str = "") -> str:
    """A whole document; ``depth`` is how many folders below the root it sits (for relative links)."""
    root = "../" * depth
    plotly = f'<script src="{root}assets/plotly.min.js" defer></script>\n' if plots else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{esc(title)} · evalkit</title>\n"
        f'<link rel="stylesheet" href="{root}assets/site.css">\n'
        f"{plotly}"
        f'<script src="{root}assets/site.js" defer></script>\n'
        "</head>\n<body>\n"
        f'<header><nav><a class="brand" href="{root}index.html">evalkit</a>'
        f'<a href="{root}index.html#leaderboard">Leaderboard</a><a href="{root}index.html#models">Models</a>'
        f'<a href="{root}index.html#tasks">Tasks</a></nav></header>\n'
        f"<main>\n<h1>{esc(title)}</h1>\n{body}</main>\n"
        f"<footer>Built by evalkit {esc(__version__)} from stored run records. {footer}</footer>\n"
        "</body>\n</html>\n"
    )


def plot_block(figure_json: str | None, div_id: str, note: str | None, caption: str = "") -> str:
    """A plot rendered by site.js from JSON data, or the note that says why there is none."""
    if figure_json is None:
        return f'<p class="note plot-note" id="{esc(div_id)}">{esc(note or "nothing to plot")}</p>\n'
    caption_html = f'<p class="caption">{esc(caption)}</p>' if caption else ""
    return (
        f'<figure class="plot-figure">'
        f'<div class="plot" id="{esc(div_id)}" data-figure="{esc(div_id)}-data"></div>'
        f"{caption_html}</figure>\n"
        f'<script type="application/json" id="{esc(div_id)}-data">{script_json(figure_json)}</script>\n'
    )


@dataclass(frozen=True)
class Cell:
    """A table cell: escaped HTML to show, and an optional value to sort by (numbers sort numerically)."""

    html: str
    sort: str | float | None = None
    classes: str = ""
    title: str = ""  # shown on hover (e.g. a score's interval)


def text_cell(value: object, classes: str = "") -> Cell:
    return Cell(esc(value), None, classes)


def link_cell(text: str, href: str, sort: str | None = None) -> Cell:
    return Cell(f'<a href="{esc(href)}">{esc(text)}</a>', sort if sort is not None else text)


def number_cell(value: float | None, text: str, classes: str = "num") -> Cell:
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    return Cell(
        esc(text) if not missing else '<span class="missing">–</span>', None if missing else value, classes
    )


def table(
    headers: Sequence[str | tuple[str, str]],
    rows: Iterable[Sequence[Cell]],
    *,
    table_id: str,
    sortable: bool = True,
    filter_label: str | None = None,
) -> str:
    """A table; headers are plain text, or (text, extra escaped HTML such as a link) pairs.

    Sorting and filtering are done by site.js from ``data-sort`` values, so the order of the
    HTML is the default order and the page works (unsorted) without JavaScript.
    """
    head = []
    for index, header in enumerate(headers):
        label, extra = (header, "") if isinstance(header, str) else header
        button = (
            f'<button type="button" class="sort" data-column="{index}">{esc(label)}</button>'
            if sortable
            else esc(label)
        )
        head.append(f'<th scope="col">{button}{extra}</th>')
    body = []
    for row in rows:
        cells = []
        for cell in row:
            attrs = f' class="{esc(cell.classes)}"' if cell.classes else ""
            if cell.sort is not None:
                attrs += f' data-sort="{esc(_sort_text(cell.sort))}"'
            if cell.title:
                attrs += f' title="{esc(cell.title)}"'
            cells.append(f"<td{attrs}>{cell.html}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    filter_box = ""
    if filter_label:
        filter_box = (
            f'<p class="filter"><label>{esc(filter_label)} <input type="search" class="table-filter" '
            f'data-table="{esc(table_id)}" autocomplete="off"></label> '
            f'<span class="filter-count" data-table="{esc(table_id)}"></span></p>\n'
        )
    classes = "data sortable" if sortable else "data"
    return (
        f'{filter_box}<div class="table-wrap"><table class="{classes}" id="{esc(table_id)}">\n'
        f"<thead><tr>{''.join(head)}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody></table></div>\n"
    )


def _sort_text(value: str | float) -> str:
    # Eight significant digits order any two scores a reader could tell apart, in half the bytes.
    return format(float(value), ".8g") if isinstance(value, int | float) else value


def facts_list(items: Iterable[tuple[str, object]]) -> str:
    """A definition list of label / value pairs (values escaped; None shown as a dash)."""
    rows = [f"<dt>{esc(label)}</dt><dd>{'–' if value is None else esc(value)}</dd>" for label, value in items]
    return '<dl class="facts">' + "".join(rows) + "</dl>\n"


def human_bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_count(value: int) -> str:
    """134515008 -> '134.5M': parameter counts at a glance."""
    for threshold, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= threshold:
            return f"{value / threshold:.1f}{suffix}"
    return str(value)
