"""The static site in a real headless Chromium: sorting, filtering, plots, and planted XSS that must not run.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install -y chromium chromium-driver``)
and ``selenium`` (the ``dev`` extra). Selenium drives /usr/bin/chromedriver, named explicitly so
selenium-manager never tries to download a browser; the tests skip with the reason when either
binary or selenium is missing. Pages are opened from ``file://``, as a user opening the folder would.

Why selenium and not playwright: Debian ships a chromedriver built for the very same Chromium, and
selenium is a pure-Python wheel that speaks the standard WebDriver protocol to it. playwright's wheel
bundles a Node driver pinned to the Chromium revisions it downloads itself (which fails offline);
pointing it at another Chromium build works only while the two protocols happen to agree.

Screenshots of the real reference store, to look at after a change to the pages
(``benchmarks/screenshots.sh results /tmp/evalkit-site`` runs exactly this)::

    .venv/bin/evalkit site --results results --out /tmp/evalkit-site/site
    chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --virtual-time-budget=5000 \\
        --window-size=1400,1000 --screenshot=/tmp/evalkit-site/leaderboard.png \\
        file:///tmp/evalkit-site/site/index.html
    chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --virtual-time-budget=5000 \\
        --window-size=1400,1000 --screenshot=/tmp/evalkit-site/model.png \\
        "file://$(ls /tmp/evalkit-site/site/models/*.html | head -1)"
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from site_records import EVIL_MODEL, SCRIPT_PAYLOAD, demo_store

from evalkit.site import build_site

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def _skip_reason() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    for binary, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not Path(binary).exists():
            return f"{binary} not found (apt-get install -y {package})"
    return None


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("browser")
    store = demo_store(root / "results")
    build_site(store.root, root / "site")
    return root / "site"


@pytest.fixture(scope="module")
def site_without_csp(site: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same site minus its Content-Security-Policy, so escaping alone must keep payloads inert."""
    copy = tmp_path_factory.mktemp("no-csp") / "site"
    shutil.copytree(site, copy)
    for page in copy.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        stripped = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>\n', "", text)
        assert stripped != text
        page.write_text(stripped, encoding="utf-8")
    return copy


@pytest.fixture(scope="module")
def browser(site: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000"):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def open_page(browser: Any, path: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(path.as_uri())
    # site.js runs on DOMContentLoaded; wait until every plot has been drawn (or there are none).
    WebDriverWait(browser, 20).until(
        lambda driver: driver.execute_script(
            "return document.readyState === 'complete' && document.querySelectorAll('div.plot').length"
            " <= document.querySelectorAll('div.plot .plot-container').length"
        )
    )


def console_errors(browser: Any) -> list[str]:
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def model_column(browser: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    rows = browser.find_elements(By.CSS_SELECTOR, "#leaderboard-table tbody tr")
    index = header_index(browser, "model")
    return [row.find_elements(By.TAG_NAME, "td")[index].text for row in rows if row.is_displayed()]


def header_index(browser: Any, label: str) -> int:
    from selenium.webdriver.common.by import By

    buttons = browser.find_elements(By.CSS_SELECTOR, "#leaderboard-table thead button.sort")
    return next(i for i, button in enumerate(buttons) if button.text == label)


def click_header(browser: Any, label: str) -> None:
    from selenium.webdriver.common.by import By

    buttons = browser.find_elements(By.CSS_SELECTOR, "#leaderboard-table thead button.sort")
    buttons[header_index(browser, label)].click()


def test_leaderboard_sorts_when_a_header_is_clicked(browser: Any, site: Path) -> None:
    open_page(browser, site / "index.html")
    by_mean = ["ref-360m", "ref-360m-int8", "mamba-130m", EVIL_MODEL]
    assert model_column(browser) == by_mean  # the built order: mean, best first
    click_header(browser, "model")
    assert model_column(browser) == sorted(by_mean, key=str.lower)
    click_header(browser, "model")
    assert model_column(browser) == sorted(by_mean, key=str.lower, reverse=True)
    click_header(browser, "mean %")  # numbers start high to low
    assert model_column(browser) == by_mean
    click_header(browser, "mean %")
    assert model_column(browser) == by_mean[::-1]


def test_leaderboard_filters_as_you_type(browser: Any, site: Path) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, site / "index.html")
    box = browser.find_element(By.CSS_SELECTOR, "input.table-filter[data-table='leaderboard-table']")
    box.send_keys("ref-360m")
    assert model_column(browser) == ["ref-360m", "ref-360m-int8"]
    assert browser.find_element(By.CSS_SELECTOR, "span.filter-count").text == "2 of 4 rows"
    box.send_keys("-int8")
    assert model_column(browser) == ["ref-360m-int8"]
    box.clear()
    box.send_keys("no such model")
    assert model_column(browser) == []


def test_plots_render_offline_without_console_errors(browser: Any, site: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get_log("browser")  # drop what earlier pages logged
    pages = [
        site / "index.html",
        *sorted((site / "models").glob("*.html")),
        *sorted((site / "tasks").glob("*.html")),
    ]
    for page in pages:
        open_page(browser, page)
        assert browser.execute_script("return typeof window.Plotly") == "object", page.name
        plots = browser.find_elements(By.CSS_SELECTOR, "div.plot")
        assert plots, page.name
        drawn = browser.find_elements(By.CSS_SELECTOR, "div.plot .plot-container svg.main-svg")
        assert len(drawn) >= len(plots), page.name
        assert console_errors(browser) == [], page.name
    open_page(browser, site / "index.html")
    bars = browser.find_elements(By.CSS_SELECTOR, "#plot-accuracy g.point")
    assert len(bars) >= 7  # 4 models' bars over 3 tasks (the failed run has none), drawn as SVG paths


def test_planted_scripts_do_not_run_and_show_as_text(
    browser: Any, site: Path, site_without_csp: Path
) -> None:
    from selenium.webdriver.common.by import By

    for root in (site, site_without_csp):  # the policy is a second wall; escaping must hold alone
        evil_model = next((root / "models").glob("evil*.html"))
        evil_samples = next((root / "samples").glob("evil*.html"))
        for page in (root / "index.html", evil_model, evil_samples):
            open_page(browser, page)
            assert browser.execute_script("return typeof window.__pwned") == "undefined", page
            assert browser.find_elements(By.CSS_SELECTOR, "main img") == [], page
            assert console_errors(browser) == [], page
    evil_samples = next((site / "samples").glob("evil*.html"))
    open_page(browser, site / "index.html")
    assert EVIL_MODEL in model_column(browser)  # the name reads as typed, tags and all
    assert SCRIPT_PAYLOAD in browser.find_element(By.ID, "failures-table").text
    legend = browser.find_element(By.CSS_SELECTOR, "#plot-accuracy .legend").text
    assert "<script>window.__pwned" in legend  # plotly showed the entity-escaped name as text
    open_page(browser, evil_samples)
    prompt = browser.find_element(By.CSS_SELECTOR, "#samples-table tbody tr td:nth-child(3)").text
    assert prompt.startswith("Prompt 0 " + SCRIPT_PAYLOAD)
