"""Static index pages: the run folders of an output folder (``deeprep index``), and the pairs of one run.

Both are rendered from ``templates/index.html.j2`` and read only ``summary.json``
files, so a nightly job can rebuild the output folder's index after each run
without TensorFlow and without opening any store.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2

from deeprep_report import __version__
from deeprep_report.audit.verdict import CheckResult, verdict
from deeprep_report.config import ReportSection
from deeprep_report.errors import UserError
from deeprep_report.report.templates import rendered_at, template_environment
from deeprep_report.store import read_summary, write_atomic

log = logging.getLogger("deeprep")
INDEX = "index.html"
COLUMNS = ("date", "name", "verdict", "detail")


def write_index(output_dir: Path) -> Path:
    """Write ``output_dir/index.html``: one row per finished run folder, newest first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        raise UserError(f"{output_dir}: no such folder")
    runs = [row for row in (_run_row(path) for path in sorted(output_dir.glob("*/summary.json"))) if row]
    runs.sort(key=lambda row: row["started"], reverse=True)
    log.info("index: %d run folders in %s", len(runs), output_dir)
    return _write(output_dir / INDEX, {
        "title": f"deeprep runs in {output_dir.resolve().name}",
        "intro": f"{len(runs)} finished run folders, newest first. Rebuild with: deeprep index {output_dir}",
        "caption": "Each run's verdict comes from its checks; the link opens its report.",
        "empty": "No finished run folders (folders with a summary.json) here yet.", "rows": runs, "report_href": None,
        "run_id": "",
    })


def write_pairs_index(run_dir: Path, summary: dict[str, Any], anchors: dict[tuple[str, str], str],
                      environment: jinja2.Environment) -> Path:
    """``run_dir/index.html`` for a run with several pairs: each pair, its checks, a link into report.html."""
    results = (summary.get("checks") or {}).get("results", [])
    rows = []
    for (model, dataset), anchor in anchors.items():
        mine = verdict([CheckResult(**r) for r in results if r["model"] == model and r["dataset"] == dataset])
        pair = next(p for p in summary["pairs"] if p["model"] == model and p["dataset"] == dataset)
        rows.append({"when": summary["run"]["started"], "name": f"{model} × {dataset}",
                     "href": f"report.html#{anchor}", "status": mine.status if results else "–",
                     "detail": f"{mine.failed} failed, {mine.warnings} warnings; {pair['n_samples']:,} samples, "
                               f"{len(pair['layers'])} layers"})
    return _write(run_dir / INDEX, {
        "title": f"deeprep run {summary['run']['name']}: {len(rows)} model × dataset pairs",
        "intro": f"Started {summary['run']['started']}.", "report_href": "report.html",
        "caption": "Each pair's checks; the link opens its section of the report.",
        "empty": "", "rows": rows, "run_id": summary["run"].get("id", ""),
    }, environment)


def _run_row(path: Path) -> dict[str, Any] | None:
    try:
        summary = read_summary(path)  # a sibling folder is untrusted: validated, skipped (and said) if malformed
    except UserError as exc:
        log.warning("index: skipping %s", exc)
        return None
    run = summary["run"]
    verdict = (summary.get("checks") or {}).get("verdict")
    folder = path.parent.name
    report = path.parent / "report.html"
    pairs = summary.get("pairs", [])
    models = sorted({p["model"] for p in pairs})
    detail = f"{len(pairs)} pairs: {', '.join(models)}"
    if verdict:
        detail = f"{verdict['failed']} failed, {verdict['warnings']} warnings; " + detail
    if summary.get("comparison"):
        detail += f"; compared with {summary['comparison']['baseline']['name']}"
    return {"started": run.get("started", ""), "when": run.get("started", ""), "name": f"{run.get('name', folder)} ({folder})",
            "href": _relative_href(folder, "report.html" if report.is_file() else "summary.json"),
            "status": verdict["status"] if verdict else "no checks", "detail": detail}


def _relative_href(folder: str, file: str) -> str:
    """A link into a sibling folder that no folder name can turn into a scheme (``javascript:``) or break:
    percent-encoded, and starting with ``./``."""
    return f"./{quote(folder, safe='')}/{file}"


def _write(target: Path, context: dict[str, Any], environment: jinja2.Environment | None = None) -> Path:
    environment = environment or template_environment(ReportSection())
    html = environment.get_template("index.html.j2").render(
        **context, columns=COLUMNS, rendered_at=rendered_at(), tool_version=__version__)
    write_atomic(target, html)
    return target
