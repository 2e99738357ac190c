"""The static leaderboard site: `evalkit site --results results/ --out site/`.

A folder of plain HTML with a sortable, filterable leaderboard, one page per model and per
task, a sample browser per model and task, and plotly plots rendered offline from a bundled
plotly.js. Importing this package imports pandas (through the leaderboard); the CLI imports it
only when the command runs.
"""

from evalkit.site._builder import MARKER, PLOTLY_JS, SiteReport, build_site, write_site
from evalkit.site._html import esc, script_json, slug

__all__ = ["MARKER", "PLOTLY_JS", "SiteReport", "build_site", "esc", "script_json", "slug", "write_site"]
