"""The look shared by every evalkit plot, and the helpers that keep figures small and safe.

A small explicit template instead of plotly's default one: the default adds about 8 KB of JSON
to every figure, which a site with hundreds of plots pays hundreds of times.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import plotly.graph_objects as go

COLORS = (
    "#4c72b0",
    "#dd8452",
    "#55a868",
    "#c44e52",
    "#8172b3",
    "#937860",
    "#da8bc3",
    "#8c8c8c",
    "#ccb974",
    "#64b5cd",
)
FAMILY_COLORS = {"transformer": "#4c72b0", "ssm": "#dd8452", "hybrid": "#55a868"}
FAMILY_DASH = {"transformer": "solid", "ssm": "dash", "hybrid": "dot"}
FRONTIER_COLOR = "#c44e52"
_GRID = "#e5e5e5"
_TOP_LEGEND_ITEMS = 4


def base_layout(title: str, *, subtitle: str = "", **extra: Any) -> dict[str, Any]:
    """The shared layout; ``title`` and ``subtitle`` must already be :func:`plot_text`-escaped."""
    axis = {"gridcolor": _GRID, "zerolinecolor": "#bbbbbb", "linecolor": "#888888", "automargin": True}
    heading: dict[str, Any] = {"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 16}}
    if subtitle:
        heading["subtitle"] = {"text": subtitle, "font": {"size": 12, "color": "#59636e"}}
    layout: dict[str, Any] = {
        "title": heading,
        "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "colorway": list(COLORS),
        "margin": {"l": 60, "r": 20, "t": 80 if subtitle else 60, "b": 60},
        "hovermode": "closest",
        "xaxis": dict(axis),
        "yaxis": dict(axis),
        "legend": {"orientation": "v"},
        "template": {},  # no default template: see the module docstring
    }
    layout.update(extra)
    return layout


def legend_for(items: int) -> dict[str, Any]:
    """A few entries sit in one row above the plot, clear of rotated tick labels; more go right."""
    if items <= _TOP_LEGEND_ITEMS:
        return {"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom"}
    return {"orientation": "v"}


def plot_text(text: str) -> str:
    """Text that plotly.js shows literally.

    plotly.js renders a subset of HTML in titles, labels and legends (``<b>``, ``<a href>``...)
    and decodes entities; model names and task names are untrusted, so ``&``, ``<`` and ``>``
    become entities and the name is displayed, never interpreted.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def new_figure(data: list[dict[str, Any]], layout: dict[str, Any]) -> go.Figure:
    """A Figure of trusted, already-valid dicts.

    Validation is skipped (plotly's ``_validate=False``): it took about two thirds of a 10,000-record
    site build, and the dicts come from this package only; tests/test_plots.py re-validates every
    kind of figure, so a misspelt property still fails a test rather than silently doing nothing.
    """
    import plotly.graph_objects as go

    return go.Figure(data=data, layout=layout, _validate=False)


def note_figure(title: str, note: str) -> go.Figure:
    """A figure with no data that says why, so an export or a page never shows a silent blank."""
    layout = base_layout(
        plot_text(title),
        xaxis={"visible": False},
        yaxis={"visible": False},
        height=220,
        annotations=[
            {
                "text": plot_text(note),
                "xref": "paper",
                "yref": "paper",
                "x": 0.5,
                "y": 0.5,
                "showarrow": False,
                "font": {"size": 13, "color": "#555555"},
            }
        ],
    )
    return new_figure([], layout)


def figure_note(figure: go.Figure) -> str | None:
    """The note of a figure made by :func:`note_figure` (one without data), else None."""
    if figure.data or not figure.layout.annotations:
        return None
    text = figure.layout.annotations[0].text
    return None if text is None else str(text).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def cap_note(shown: int, total: int, what: str) -> str:
    return "" if shown >= total else f"first {shown} of {total} {what} shown"


def length_ticks(lengths: list[int]) -> dict[str, Any]:
    """Log-axis ticks at the measured context lengths only, labelled '4k': no minor-digit clutter."""
    values = sorted(set(lengths))
    return {"type": "log", "tickvals": values, "ticktext": [short_length(value) for value in values]}


def mebibytes(value: float) -> float:
    return value / 2**20


def short_length(tokens: int) -> str:
    """4096 -> '4k', 131072 -> '128k', 1000 -> '1000': axis labels that fit."""
    return f"{tokens // 1024}k" if tokens >= 1024 and tokens % 1024 == 0 else str(tokens)


def horizontal_line(y: float, color: str) -> dict[str, Any]:
    """A dashed line across the whole plot at height y (chance levels, thresholds)."""
    return {
        "type": "line",
        "xref": "paper",
        "x0": 0,
        "x1": 1,
        "y0": y,
        "y1": y,
        "line": {"dash": "dash", "color": color, "width": 1},
    }
