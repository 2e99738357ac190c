"""The static site, without a browser: files, links, determinism, escaping, errors and the CLI."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from site_records import EVIL_MODEL, IMG_PAYLOAD, PAYLOAD, SCRIPT_PAYLOAD, demo_store, record, samples

from evalkit.cli import site as site_cli
from evalkit.results import ResultsStore
from evalkit.site import MARKER, build_site, slug

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "tasks" / "arc_easy.yaml"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A built demo site (built once: the tests only read it) and its store."""
    root = tmp_path_factory.mktemp("demo")
    store = demo_store(root / "results", spec_file=str(SPEC))
    report = build_site(store.root, root / "site")
    assert report.problems == ()
    return root / "site", store.root


class _Page(HTMLParser):
    """The links, scripts and visible text of one page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.scripts: list[dict[str, str | None]] = []
        self.json_blocks: list[str] = []
        self.text: list[str] = []
        self._in_json = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.links += [value for name, value in attrs if name in ("href", "src") and value]
        if tag == "script":
            self.scripts.append(values)
            self._in_json = values.get("type") == "application/json"
        for name, _ in attrs:
            assert not name.startswith("on"), f"event handler attribute {name} in the page"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_json = False

    def handle_data(self, data: str) -> None:
        (self.json_blocks if self._in_json else self.text).append(data)


def parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def pages(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


def test_site_has_an_index_a_page_per_model_and_task_and_sample_browsers(demo: tuple[Path, Path]) -> None:
    site, _ = demo
    from plotly.offline import get_plotlyjs

    assert (site / "assets" / "plotly.min.js").read_text(encoding="utf-8") == get_plotlyjs()
    assert (site / "assets" / "site.js").is_file() and (site / "assets" / "site.css").is_file()
    assert len(list((site / "models").glob("*.html"))) == 4
    assert sorted(p.name.split("-")[0] for p in (site / "tasks").glob("*.html")) == ["arc", "needle", "piqa"]
    assert len(list((site / "samples").glob("*.html"))) == 3  # the three records with per-sample logs
    for path in pages(site):  # file names are slugs: nothing a name could smuggle in
        assert re.fullmatch(r"[a-z0-9-]+\.html", path.name), path.name


def test_every_local_link_resolves_and_nothing_is_fetched_from_the_network(demo: tuple[Path, Path]) -> None:
    site, _ = demo
    checked = 0
    for path in pages(site):
        for link in parse(path).links:
            assert not re.match(r"^[a-z]+:", link), f"{path.name} links outside the site: {link}"
            target = link.split("#")[0]
            if target:
                assert (path.parent / target).resolve().is_file(), f"{path.name}: broken link {link}"
                checked += 1
    assert checked > 50


def test_two_builds_are_byte_identical_and_a_rebuild_replaces_the_old_site(
    demo: tuple[Path, Path], tmp_path: Path
) -> None:
    site, results = demo
    again = tmp_path / "again"
    build_site(results, again)
    build_site(results, again)  # over its own earlier output
    first = {p.relative_to(site): p.read_bytes() for p in site.rglob("*") if p.is_file()}
    second = {p.relative_to(again): p.read_bytes() for p in again.rglob("*") if p.is_file()}
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []


def test_untrusted_text_is_escaped_everywhere(demo: tuple[Path, Path]) -> None:
    site, _ = demo
    for path in pages(site):
        html = path.read_text(encoding="utf-8")
        for raw in (SCRIPT_PAYLOAD, IMG_PAYLOAD, "<img", "<!--"):
            assert raw not in html, f"{raw!r} unescaped in {path.name}"
        page = parse(path)
        for script in page.scripts:  # only the site's own files, or inert JSON data
            assert script.get("type") == "application/json" or str(script.get("src", "")).endswith(".js")
        for block in page.json_blocks:
            assert not {"<", ">", "&", "\u2028", "\u2029"} & set(block)
            json.loads(block)
    index = "".join(parse(site / "index.html").text)
    assert EVIL_MODEL in index  # shown as text: the parser decoded the entities back
    sample_page = next(p for p in (site / "samples").glob("evil*.html"))
    text = "".join(parse(sample_page).text)
    assert "Prompt 0 " + SCRIPT_PAYLOAD in text and "<b>not bold</b>" in text


def test_failed_runs_are_listed_with_their_message(demo: tuple[Path, Path]) -> None:
    site, _ = demo
    text = "".join(parse(site / "index.html").text)
    assert "Failed runs (1)" in text
    assert PAYLOAD.split("\u2028")[0].strip() in text  # the error message, as text
    model_page = next((site / "models").glob("evil*.html"))
    assert "Failed runs (1)" in "".join(parse(model_page).text)


def test_leaderboard_table_has_intervals_ranks_pareto_and_efficiency(demo: tuple[Path, Path]) -> None:
    site, _ = demo
    html = (site / "index.html").read_text(encoding="utf-8")
    table = html[html.index('id="leaderboard-table"') : html.index("</table>")]
    headers = re.findall(r'class="sort" data-column="\d+">([^<]*)<', table)
    assert headers[:4] == ["rank", "model", "mean %", "mean norm. %"]
    assert {"Pareto", "ms / token", "needle", "arc_easy", "piqa"} <= set(headers)
    rows = re.findall(r"<tr>(.*?)</tr>", table[table.index("<tbody>") :], flags=re.S)
    assert len(rows) == 4
    best = rows[0]
    assert ">ref-360m</a>" in best and "★ memory, latency" in best
    assert 'title="95% CI 52.2 to 70.9"' in best and "-9.8/+8.9" in best  # arc_easy: Wilson's for 62 of 100
    assert 'class="legend"' in html and "Pareto front" in html


def test_without_ranks_no_sample_log_is_read_for_the_leaderboard(tmp_path: Path) -> None:
    store = demo_store(tmp_path / "results")
    for log in (store.root / "samples").glob("*.jsonl"):
        log.write_text("not json\n")  # any read of a log would now be reported
    report = build_site(store.root, tmp_path / "site", ranks=False)
    assert len(report.problems) == 3 and all("sample" in p for p in report.problems)  # the 3 browser pages
    html = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert 'data-column="0">model<' in html and ">rank<" not in html


def test_model_page_shows_provenance_variants_and_plots(demo: tuple[Path, Path]) -> None:
    site, _ = demo
    path = next(p for p in (site / "models").glob("ref-360m-[0-9a-f]*.html") if "int8" not in p.name)
    html = path.read_text(encoding="utf-8")
    text = "".join(parse(path).text)
    for fact in ("Provenance", "0123456789abcdef", "library torch", "2.13.0+cpu", "ci: x86-64, 2 cores"):
        assert fact in text
    assert "Variants" in text and "int8 weight-only" in text
    assert 'id="plot-model-quantization"' in html and 'id="plot-model-efficiency"' in html
    assert 'data-figure="plot-model-accuracy-data"' in html


def test_task_page_shows_its_spec_file_and_long_context_plots(demo: tuple[Path, Path]) -> None:
    site, _ = demo
    arc = next((site / "tasks").glob("arc-easy-*.html"))
    assert SPEC.read_text(encoding="utf-8").splitlines()[0] in "".join(parse(arc).text)
    needle = next((site / "tasks").glob("needle-*.html")).read_text(encoding="utf-8")
    assert 'id="plot-task-context"' in needle and 'id="plot-needle-0"' in needle


def test_sample_browser_caps_the_page_and_says_how_many_were_left_out(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "results")
    store.append(record("big", "arc_easy", 0.5, n=250), samples(250, set(range(125))))
    build_site(store.root, tmp_path / "site")
    page = next((tmp_path / "site" / "samples").glob("*.html")).read_text(encoding="utf-8")
    assert page.count("<tr>") == 1 + 200  # header row + the first 200 samples
    assert "Showing the first 200 of 250 samples" in page


def test_sample_logs_outside_the_store_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "secret.jsonl"
    outside.write_text(samples(1, {0})[0].model_dump_json() + "\n")
    store = ResultsStore(tmp_path / "results")
    store.append(record("m", "t", 0.5).model_copy(update={"samples_file": "../secret.jsonl"}))
    report = build_site(store.root, tmp_path / "site")
    assert len(report.problems) == 1 and "outside the store" in report.problems[0]
    page = next((tmp_path / "site" / "samples").glob("*.html")).read_text(encoding="utf-8")
    assert "Question 0?" not in page


def test_a_store_of_failed_runs_only_still_gets_a_site_that_lists_them(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "results")
    store.append(record("broken", "arc_easy", 0.0, error="ValueError: bad weights"))
    report = build_site(store.root, tmp_path / "site")
    assert report.problems == () and report.pages == 3  # index, the model, the task
    text = "".join(parse(tmp_path / "site" / "index.html").text)
    assert "No successful run records to rank." in text and "ValueError: bad weights" in text
    model = "".join(parse(next((tmp_path / "site" / "models").glob("*.html"))).text)
    assert "This model has no successful run." in model and "Failed runs (1)" in model


def test_slugs_are_safe_and_keep_similar_names_apart() -> None:
    assert slug("../../etc/passwd") == slug("../../etc/passwd")
    assert re.fullmatch(r"[a-z0-9-]+", slug("../../etc/passwd"))
    assert slug("A/B") != slug("a-b")
    assert slug("<>").startswith("item-")


def test_cli_builds_the_site_and_refuses_a_folder_it_did_not_write(tmp_path: Path) -> None:
    store = demo_store(tmp_path / "results")
    runner = CliRunner()
    result = runner.invoke(site_cli.site, ["--results", str(store.root), "--out", str(tmp_path / "site")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "site" / MARKER).is_file() and "wrote 11 pages" in result.output
    other = tmp_path / "project"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    refused = _evalkit("site", "--results", str(store.root), "--out", str(other))
    assert refused.returncode == 2 and "not written by `evalkit site`" in refused.stderr
    assert (other / "keep.txt").read_text() == "mine"


def test_cli_missing_store_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = _evalkit("site", "--results", str(tmp_path / "nowhere"), "--out", str(tmp_path / "site"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "results folder not found" in result.stderr


def test_cli_corrupt_lines_are_reported_and_the_site_is_still_built(tmp_path: Path) -> None:
    store = demo_store(tmp_path / "results")
    with store.records_path.open("a") as handle:
        handle.write('{"schema_version": 1, "broken": tru\n')
    result = _evalkit("site", "--results", str(store.root), "--out", str(tmp_path / "site"))
    assert result.returncode == 2
    assert "corrupt line skipped" in result.stderr and "records.jsonl:10" in result.stderr
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "Unreadable records (skipped)" in index and "ref-360m" in index


def test_help_lists_site_and_plot_without_importing_pandas_or_plotly() -> None:
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom evalkit.cli.main import cli\n"
        "out = CliRunner().invoke(cli, ['--help']).output\n"
        "assert 'site' in out and 'plot' in out, out\n"
        "heavy = [m for m in ('pandas', 'plotly') if m in sys.modules]\nassert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


_MAIN = "import sys; from evalkit.cli.main import main; sys.argv[0] = 'evalkit'; main()"


def _evalkit(*args: str) -> subprocess.CompletedProcess[str]:
    """evalkit's real entry point in a fresh interpreter: exit codes and stderr as a user sees them."""
    return subprocess.run([sys.executable, "-c", _MAIN, *args], capture_output=True, text=True, check=False)


@pytest.mark.parametrize(
    ("correct", "n", "shown"),
    [(2, 9, "6.3 – 54.7"), (9, 9, "70.1 – 100.0"), (3, 20, "5.2 – 36.0")],
)
def test_model_page_intervals_stay_inside_0_to_100_percent(
    tmp_path: Path, correct: int, n: int, shown: str
) -> None:
    # The record stores the Wald interval older evalkit wrote (-6.6 - 51.0 % for 2 of 9, a point at
    # 100 % for 9 of 9); the page shows Wilson's instead.
    item = record("m", "t", correct / n, n=n)
    metric = item.metrics["acc"]
    wald = 1.959963984540054 * math.sqrt(metric.value * (1 - metric.value) / (n - 1))
    stored = metric.model_copy(update={"ci95": (metric.value - wald, metric.value + wald)})
    store = ResultsStore(tmp_path / "results")
    store.append(item.model_copy(update={"metrics": {"acc": stored}}))
    build_site(store.root, tmp_path / "site", ranks=False)
    (page,) = (tmp_path / "site" / "models").glob("m-*.html")
    text = "".join(parse(page).text)
    assert shown in text
    assert "-6.6" not in text and "100.0 – 100.0" not in text


def test_infinite_and_undefined_metrics_are_read_and_shown_not_dropped(tmp_path: Path) -> None:
    # An overflowing perplexity (+inf) and a metric over no samples (NaN): before, both were written
    # as null and the whole record was then skipped as corrupt.
    item = record("m", "wikitext", 12.0, bounded=False, primary="word_perplexity")
    infinite = item.metrics["word_perplexity"].model_copy(update={"value": math.inf})
    empty = infinite.model_copy(update={"value": math.nan, "n": 0})
    store = ResultsStore(tmp_path / "results")
    store.append(item.model_copy(update={"metrics": {"word_perplexity": infinite, "bits_per_byte": empty}}))
    report = build_site(store.root, tmp_path / "site", ranks=False)
    assert report.problems == ()
    (page,) = (tmp_path / "site" / "models").glob("m-*.html")
    text = "".join(parse(page).text)
    assert "word_perplexityinf" in text and "bits_per_byte n/a" in text and "nan%" not in text
