"""The demo report in a real browser (headless Chromium, network off): it must load cleanly.

Needs Debian's ``chromium`` and the ``playwright`` package (test extra); ``.ci/run``
installs both and sets DEEPREP_REQUIRE_BROWSER=1 so a missing browser fails
there instead of skipping. The demo report's full-page screenshot goes to the test's temporary
folder, or to ``DEEPREP_SCREENSHOT_DIR`` to keep it (never into the working tree).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BROWSER = next((path for name in ("chromium", "chromium-browser", "google-chrome")
                if (path := shutil.which(name))), None)
REQUIRED = os.environ.get("DEEPREP_REQUIRE_BROWSER") == "1"


def _need(condition: bool, reason: str) -> None:
    if not condition:
        if REQUIRED:
            pytest.fail(reason + " (DEEPREP_REQUIRE_BROWSER=1)")
        pytest.skip(reason)


def test_demo_report_in_headless_chromium(demo_run, tmp_path):
    _need(BROWSER is not None, "no chromium on PATH")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need(False, "playwright is not installed")
    report = demo_run[0] / "report.html"
    console_errors: list[str] = []
    page_errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=BROWSER,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"])
        try:
            context = browser.new_context(offline=True, viewport={"width": 1200, "height": 900})
            page = context.new_page()
            page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(report.as_uri(), wait_until="load")
            images = page.evaluate("[...document.images].map(i => [i.complete, i.naturalWidth, i.alt])")
            missing_targets = page.evaluate(
                "[...document.querySelectorAll('a[href^=\"#\"]')]"
                ".map(a => a.getAttribute('href').slice(1)).filter(id => !document.getElementById(id))")
            toc_links = page.evaluate("document.querySelectorAll('nav.toc a').length")
            out = Path(os.environ.get("DEEPREP_SCREENSHOT_DIR") or tmp_path)  # never the working tree
            page.screenshot(path=str(out / "report-screenshot.png"), full_page=True)
        finally:
            browser.close()
    assert console_errors == [] and page_errors == []
    assert [url for url in requests if not url.startswith(("file://", "data:"))] == []
    assert len(images) >= 25
    assert all(complete and width > 0 and alt for complete, width, alt in images), images
    assert toc_links >= 14 and missing_targets == []


def test_every_link_of_an_index_page_is_inert_in_chromium(small_run, tmp_path):
    """Run folders named like scripts and schemes, and a pairs index with such model and dataset names: clicking
    each link opens a file of that run or a section of its report, and nothing runs (no dialog, no error)."""
    _need(BROWSER is not None, "no chromium on PATH")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need(False, "playwright is not installed")
    from deeprep_report.cli import main
    from deeprep_report.config import ReportSection
    from deeprep_report.report.index import write_pairs_index
    from deeprep_report.report.templates import template_environment

    out = tmp_path / "outputs"
    out.mkdir()
    names = ["javascript:alert(1)", "<img src=x onerror=alert(2)>", "data:text,x", "a\"b'c #?&x=1", "%2e%2e"]
    for name in names:
        shutil.copytree(small_run, out / name)
    assert main(["index", str(out), "--quiet"]) == 0
    run = out / names[0]
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    summary["pairs"].append({**summary["pairs"][0], "model": "<script>alert(3)</script>",
                             "dataset": "javascript:alert(4)"})
    anchors = {(pair["model"], pair["dataset"]): f"pair-{i}" for i, pair in enumerate(summary["pairs"])}
    write_pairs_index(run, summary, anchors, template_environment(ReportSection()))

    dialogs, errors, opened = [], [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=BROWSER, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_context(offline=True).new_page()
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.on("pageerror", lambda error: errors.append(str(error)))
            for index in (out / "index.html", run / "index.html"):
                page.goto(index.as_uri())
                count = page.locator("a").count()
                assert count >= (len(names) if index.parent == out else 3)
                for position in range(count):
                    page.goto(index.as_uri())
                    page.locator("a").nth(position).click()
                    page.wait_for_load_state()
                    opened.append((index, page.url))
        finally:
            browser.close()
    assert dialogs == [] and errors == []
    from urllib.parse import unquote, urlparse

    targets = {(index, Path(unquote(urlparse(url).path))) for index, url in opened}
    assert {target for index, target in targets if index.parent == out} >= {
        out / name / "report.html" for name in names}
    assert all(target.is_file() and out in target.parents for _, target in targets), targets
