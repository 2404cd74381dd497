"""The demo report and a failing report in a real browser (headless Chromium, network off): they must load
cleanly, say their verdict in words and colour, and show every map and label whole at a 1280×900 viewport.

Needs Debian's ``chromium`` and the ``playwright`` package (test extra); ``.ci/run``
installs both and sets DEEPREP_REQUIRE_BROWSER=1 so a missing browser fails
there instead of skipping. Each report's full-page screenshot goes to the test's temporary
folder, or to ``DEEPREP_SCREENSHOT_DIR`` to keep it (never into the working tree).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import verdict_line
from deeprep_report.audit.verdict import Verdict

ROOT = Path(__file__).resolve().parents[1]
BROWSER = next((path for name in ("chromium", "chromium-browser", "google-chrome")
                if (path := shutil.which(name))), None)
REQUIRED = os.environ.get("DEEPREP_REQUIRE_BROWSER") == "1"
VIEWPORT = {"width": 1280, "height": 900}
MIN_MAP_PX = 96  # the smallest a feature map or input thumbnail may be laid out, in CSS px
CLIPPED = "reaches outside its canvas"  # figures.to_png's warning for a matplotlib text cut off by its canvas

# Measured in the page after load: the verdict chip, every gallery/exemplar image, every tile label.
LAYOUT = r"""() => {
  const box = e => e.getBoundingClientRect();
  const all = selector => [...document.querySelectorAll(selector)];
  const word = document.querySelector('p.banner span.word');
  const sized = selector => all(selector).map(e => ({width: box(e).width, height: box(e).height,
                                                     background: getComputedStyle(e).backgroundImage}));
  return {
    banner: document.querySelector('p.banner')?.innerText ?? null,
    word: word?.textContent ?? null,
    chip: word ? getComputedStyle(word).backgroundColor : null,
    galleries: all('figure.gallery').length,
    exemplar_figures: all('figure.exemplars').length,
    maps: sized('figure.gallery .maps img'),
    exemplars: sized('figure.exemplars .thumb'),
    inputs: sized('.gallery-input .thumb'),
    overflowing: all('figure.gallery, figure.exemplars').filter(f => f.scrollWidth > f.clientWidth + 1)
      .map(f => f.getAttribute('aria-label')),
    labels: all('.map span, .exemplar .note').map(e => {
      const inner = box(e), tile = box(e.closest('.map, .exemplar'));
      return {text: e.textContent, width: inner.width, ellipsised: e.scrollWidth > e.clientWidth + 1,
              outside: Math.max(tile.left - inner.left, inner.right - tile.right,
                                tile.top - inner.top, inner.bottom - tile.bottom)};
    }),
  };
}"""


def _need(condition: bool, reason: str) -> None:
    if not condition:
        if REQUIRED:
            pytest.fail(reason + " (DEEPREP_REQUIRE_BROWSER=1)")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium for the module's tests (each opens its own offline context)."""
    _need(BROWSER is not None, "no chromium on PATH")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need(False, "playwright is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=BROWSER,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def fail_run(demo_run, tmp_path_factory) -> tuple[Path, str]:
    """A copy of the demo run whose checks fail (no dead unit allowed), re-rendered by ``deeprep check --write``:
    (run folder, the command's stderr, which holds the render's log lines)."""
    run = Path(shutil.copytree(demo_run[0], tmp_path_factory.mktemp("fail") / "run"))
    result = subprocess.run([sys.executable, "-m", "deeprep_report", "check", str(run), "--write",
                             "--set", "checks=[{rule: dead_units, max: 0.0}]"],
                            capture_output=True, text=True, env=os.environ.copy(), timeout=600)
    assert result.returncode == 1, result.stderr
    assert result.stdout == verdict_line(run) + "\n" and result.stdout.startswith("FAIL "), result.stdout
    return run, result.stderr


def _light_scheme_colour(name: str) -> tuple[int, int, int]:
    """The value of CSS variable ``name`` in the stylesheet's first (light) ``:root`` block, as RGB."""
    css = (ROOT / "templates/style.css").read_text(encoding="utf-8")
    root = re.search(r":root\s*\{(.*?)\}", css, re.S)
    value = re.search(rf"{re.escape(name)}:\s*#([0-9a-fA-F]{{6}})\b", root.group(1) if root else "")
    assert value, f"{name} not in the light :root block of templates/style.css"
    return tuple(int(value.group(1)[i:i + 2], 16) for i in (0, 2, 4))


def _rgb(css: str) -> tuple[int, int, int]:
    channels = re.fullmatch(r"rgba?\((\d+), (\d+), (\d+)(?:, [\d.]+)?\)", css or "")
    assert channels, css
    return tuple(int(channel) for channel in channels.groups())


@pytest.mark.parametrize("case", ["demo", "fail"])
def test_report_in_headless_chromium(case, demo_run, chromium, tmp_path, request):
    """The demo report (PASS) and a failing one (FAIL): loads with no error and no request but its own file;
    the banner says the verdict and its counts in words, on a green or red chip; every feature map and input
    thumbnail is at least 96 CSS px wide and really drawn; no tile label sticks out of its tile or is ellipsised;
    no figure text was cut off by its canvas when the report was drawn."""
    run, stderr = demo_run if case == "demo" else request.getfixturevalue("fail_run")
    report = run / "report.html"
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    verdict = Verdict(**summary["checks"]["verdict"])
    assert verdict.status == {"demo": "PASS", "fail": "FAIL"}[case]

    # The render's log: the demo run's own run.log and stderr; for the FAIL report, ``check --write``'s stderr.
    log = stderr + ((run / "run.log").read_text(encoding="utf-8") if case == "demo" else "")
    assert "report.html: " in log, log  # the log really covers the render
    assert [line for line in log.splitlines() if CLIPPED in line] == []

    console_errors: list[str] = []
    page_errors: list[str] = []
    requests: list[str] = []
    context = chromium.new_context(offline=True, viewport=VIEWPORT, color_scheme="light")
    try:
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
        layout = page.evaluate(LAYOUT)
        out = Path(os.environ.get("DEEPREP_SCREENSHOT_DIR") or tmp_path)  # never the working tree
        name = "report-screenshot.png" if case == "demo" else f"report-{case}-screenshot.png"
        page.screenshot(path=str(out / name), full_page=True)
    finally:
        context.close()

    assert console_errors == [] and page_errors == []
    assert [url for url in requests if url != report.as_uri() and not url.startswith("data:")] == []
    assert len(images) >= 25
    assert all(complete and width > 0 and alt for complete, width, alt in images), images
    assert toc_links >= 14 and missing_targets == []

    # The verdict: the word, the counts as text, and the chip in the scheme's --ok (green) or --bad (red).
    assert layout["word"] == verdict.status
    assert layout["banner"].startswith(f"{verdict.status} {verdict.counts(with_passed=True)}"), layout["banner"]
    chip = _rgb(layout["chip"])
    if case == "demo":
        assert chip == _light_scheme_colour("--ok") and chip[1] > chip[0] + 40 and chip[1] > chip[2] + 40, chip
    else:
        assert verdict.failed >= 1 and f"{verdict.failed} check" in layout["banner"]
        assert chip == _light_scheme_colour("--bad") and chip[0] > chip[1] + 80 and chip[0] > chip[2] + 80, chip

    # Every feature map and input thumbnail as laid out: wide enough, drawn, and its image really there.
    assert layout["galleries"] >= 1 and layout["exemplar_figures"] >= 1
    assert layout["maps"] and layout["exemplars"] and layout["inputs"]
    for kind in ("maps", "exemplars", "inputs"):
        too_small = [item for item in layout[kind] if item["width"] < MIN_MAP_PX or item["height"] <= 0]
        assert too_small == [], (kind, min(item["width"] for item in layout[kind]), too_small[:3])
    thumbs = layout["exemplars"] + layout["inputs"]
    assert [item["background"][:40] for item in thumbs if not item["background"].startswith('url("data:image/')] == []
    assert layout["overflowing"] == []  # no gallery or exemplar row scrolled out of sight

    # Labels under maps and exemplars: inside their tile (± 1 px) and not cut short by an ellipsis.
    assert layout["labels"]
    assert [label for label in layout["labels"]
            if label["outside"] > 1 or label["ellipsised"] or label["width"] <= 0] == []


def test_every_link_of_an_index_page_is_inert_in_chromium(small_run, chromium, tmp_path):
    """Run folders named like scripts and schemes, and a pairs index with such model and dataset names: clicking
    each link opens a file of that run or a section of its report, and nothing runs (no dialog, no error)."""
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
    context = chromium.new_context(offline=True)
    try:
        page = context.new_page()
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
        context.close()
    assert dialogs == [] and errors == []
    from urllib.parse import unquote, urlparse

    targets = {(index, Path(unquote(urlparse(url).path))) for index, url in opened}
    assert {target for index, target in targets if index.parent == out} >= {
        out / name / "report.html" for name in names}
    assert all(target.is_file() and out in target.parents for _, target in targets), targets
