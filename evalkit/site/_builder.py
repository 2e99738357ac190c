"""Build the static site: read the store, render every page, write the folder.

The output is a plain folder of HTML, CSS and JavaScript that works from ``file://`` or any
static host, with no network: plotly.js is copied from the installed plotly package. The same
records give byte-identical files (no timestamps, sorted iteration, ids derived from names), so
a site can be committed, diffed and cached.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from evalkit.errors import DataError
from evalkit.results import ResultsStore, RunRecord
from evalkit.site._data import SiteData
from evalkit.site._index import index_page
from evalkit.site._model_page import model_page
from evalkit.site._samples_page import samples_page
from evalkit.site._task_page import task_page

MARKER = ".evalkit-site"  # says a folder was written by this builder and may be rebuilt
_MANAGED = ("index.html", "assets", "models", "tasks", "samples", MARKER)
_ASSETS = ("site.css", "site.js")
PLOTLY_JS = "assets/plotly.min.js"


@dataclass(frozen=True)
class SiteReport:
    """What a build wrote, and what it could not read (the CLI exits 2 when that is not empty)."""

    out: Path
    pages: int
    problems: tuple[str, ...]


def build_site(results: Path, out: Path, *, ranks: bool = True) -> SiteReport:
    """Read the store at ``results`` and write the site to ``out``.

    Unreadable record lines are skipped and reported, like `evalkit leaderboard` does; a missing
    store raises :class:`DataError`. ``ranks`` adds the leaderboard's tie-group ranks, which read
    the per-sample logs of every shown record: turn it off for stores with thousands of logs.
    """
    store = ResultsStore(results)
    records, problems = store.read()
    return write_site(records, store, out, store_problems=[str(problem) for problem in problems], ranks=ranks)


def write_site(
    records: list[RunRecord],
    store: ResultsStore,
    out: Path,
    *,
    store_problems: list[str] | None = None,
    ranks: bool = True,
) -> SiteReport:
    """Render the pages of ``records`` (per-sample logs are read from ``store``) into ``out``.

    Every page is rendered before the folder is touched, so a failure leaves the old site whole.
    Besides the ranks, only the logs that get a sample-browser page are read (their first lines).
    """
    problems = list(store_problems or [])
    data = SiteData.collect(records, store, ranks=ranks)
    pages = [index_page(data, problems)]
    pages += [model_page(data, fingerprint) for fingerprint in data.by_model]
    pages += [task_page(data, task) for task in data.by_task]
    for key, path in data.sample_files.items():
        pages.append(samples_page(data, data.latest[key], path))
    _prepare(out)
    _write_assets(out)
    for site_page in pages:
        _write(out / site_page.path, site_page.html)
    (out / MARKER).write_text("written by `evalkit site`; the next build replaces this folder's pages\n")
    return SiteReport(out=out, pages=len(pages), problems=tuple(problems + data.problems))


def _prepare(out: Path) -> None:
    """An empty folder, or one this builder wrote before (whose pages are replaced).

    Anything else is refused rather than overwritten: `--out .` by mistake must not delete a
    project.
    """
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise DataError(
                f"{out}: folder is not empty and was not written by `evalkit site`; choose another --out"
            )
        for name in _MANAGED:
            target = out / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
    (out / "assets").mkdir(parents=True, exist_ok=True)


def _write_assets(out: Path) -> None:
    from plotly.offline import get_plotlyjs

    package_assets = files("evalkit.site") / "assets"
    for name in _ASSETS:
        (out / "assets" / name).write_bytes((package_assets / name).read_bytes())
    _write(out / PLOTLY_JS, get_plotlyjs())


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))  # bytes: no platform newline translation
