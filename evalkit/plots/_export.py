"""Figures out of Python: JSON safe inside a ``<script>`` element, and standalone offline HTML files.

Importing this module does not import plotly; exporting a figure does.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import plotly.graph_objects as go


def escape_for_script(text: str) -> str:
    """JSON text made safe inside ``<script>``: no ``</script>``, no ``<!--``, no line separators."""
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text


def figure_json(figure: go.Figure) -> str:
    """The figure as JSON that is safe inside a ``<script>`` element.

    ``<``, ``>``, ``&`` and the JavaScript line separators U+2028/2029 are written as \\u escapes,
    so no string in the figure (a model name, a task label) can close the element.
    """
    import plotly.io as pio

    return escape_for_script(pio.to_json(figure, validate=False, pretty=False, engine="json"))


def standalone_html(figure: go.Figure, div_id: str) -> str:
    """One HTML document with plotly.js inlined: opens offline, from anywhere, with no server.

    ``div_id`` is explicit because plotly otherwise draws a random one, and exports of the same
    records must be byte-identical.
    """
    html: str = figure.to_html(
        include_plotlyjs=True,
        full_html=True,
        div_id=div_id,
        validate=False,
        config={"displaylogo": False, "responsive": True},
    )
    return html


def write_standalone_html(figure: go.Figure, path: Path, div_id: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(standalone_html(figure, div_id), encoding="utf-8")
