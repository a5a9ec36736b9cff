"""The HTML report in a real headless Chromium: it loads offline with no console errors and shows every node.

Uses Playwright to drive the system Chromium (Debian: apt-get install -y chromium); skipped, with the
reason, where either is missing.
"""

from __future__ import annotations

import shutil

import pytest

from taskgraph.report.html import write_report
from tests.report.fake_run import make_run

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def _browser() -> str:
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[dev]'")
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium found (looked for chromium, chromium-browser, google-chrome): "
                "apt-get install -y chromium to run the browser test")


def test_report_loads_offline_without_errors_and_shows_every_node(tmp_path):
    from playwright.sync_api import sync_playwright

    executable = _browser()
    report = write_report(make_run(tmp_path, {"finetune": "cached", "scratch": "failed"}))
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("request", lambda req: requests.append(req.url) if not req.url.startswith("file:") else None)
            page.goto(report.as_uri(), wait_until="load")
            rows = page.eval_on_selector_all("table.nodes tr[data-node]", "rows => rows.map(r => r.dataset.node)")
            bars = page.eval_on_selector_all("svg.gantt g.bar", "bars => bars.map(b => b.dataset.node)")
            visible = [page.locator(f'table.nodes tr[data-node="{n}"]').is_visible() for n in rows]
            text = page.inner_text("body")
            picture = page.locator("div.picture svg").bounding_box()
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert errors == [], errors
    assert requests == [], f"the report fetched {requests}: it must be self-contained"
    assert rows == ["pretrain", "finetune", "scratch"] and all(visible)
    assert sorted(bars) == ["finetune", "pretrain", "scratch"]
    assert "ValueError: boom" in text and "cached" in text
    assert picture is not None and picture["width"] > 300 and picture["height"] > 100  # the SVG really renders
    assert (tmp_path / "report.png").stat().st_size > 10_000
