"""The ``audit`` stage: checks (and the comparison with a baseline) become the run's verdict.

Shared by ``deeprep run`` (after the analysis, before rendering) and
``deeprep check RUN_DIR`` (on a stored run, without TensorFlow): both call
:func:`audit`, write ``summary.json`` and ``summary.md``, then render. The
verdict line printed on stdout and the exit code come from the same
:class:`~deeprep_report.checks.Verdict`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

from deeprep_report.checks import FAIL, NOT_EVALUATED, CheckResult, Verdict, default_checks, evaluate, summarise
from deeprep_report.config import Check, Pipeline

log = logging.getLogger("deeprep")
MARKDOWN = "summary.md"


def audit(summary: dict[str, Any], pipeline: Pipeline, comparison: dict[str, Any] | None) -> Verdict:
    """Evaluate the pipeline's checks (or the default set) and put ``checks`` and ``comparison`` into ``summary``."""
    summary["comparison"] = comparison
    defaults = pipeline.checks is None
    checks: Sequence[Check] = (default_checks(summary, comparison, pipeline.analysis.transfer.dataset) if defaults
                               else pipeline.checks)
    results = evaluate(checks, summary, comparison)
    summary["checks"] = summarise(checks, defaults, results)
    verdict = verdict_of(summary)
    log.info("checks: %d passed, %d failed, %d warnings, %d not evaluated", verdict.passed, verdict.failed,
             verdict.warnings, verdict.not_evaluated)
    for result in results:
        if result.status != "pass":
            log.info("  %s %s %s × %s / %s: %s", result.status.upper() if result.status == FAIL else result.status,
                     result.rule, result.model, result.dataset, result.layer or "-", result.detail)
    return verdict


def verdict_of(summary: dict[str, Any]) -> Verdict:
    return Verdict(**summary["checks"]["verdict"])


def results_of(summary: dict[str, Any]) -> list[CheckResult]:
    return [CheckResult(**result) for result in summary["checks"]["results"]]


def write_markdown(path: Path, summary: dict[str, Any], report: str) -> None:
    """``summary.md``: the verdict and the checks that did not pass, for CI job summaries and PR comments."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(markdown(summary, report), encoding="utf-8")
    os.replace(temporary, path)


def markdown(summary: dict[str, Any], report: str) -> str:
    verdict = verdict_of(summary)
    results = results_of(summary)
    lines = [f"## deeprep: {summary['run']['name']} — {verdict.status}", "",
             f"**{verdict.line(report)}** ({verdict.passed} checks passed)", ""]
    comparison = summary.get("comparison")
    if comparison:
        lines += [f"Compared with baseline run `{comparison['baseline']['name']}` "
                  f"({comparison['baseline']['started']}).", ""]
        lines += _drift_table(comparison)
    shown = [r for r in results if r.status != "pass"]
    if shown:
        lines += ["| status | severity | rule | model × dataset | layer | value | threshold | detail |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in shown:
            status = "not evaluated" if r.status == NOT_EVALUATED else ("FAIL" if r.severity == "fail" else "warn")
            lines.append(f"| {status} | {r.severity} | `{r.rule}` | {_cell(r.model)} × {_cell(r.dataset)} | "
                         f"{_cell(r.layer or '–')} | {_number(r.value)} | {_number(r.threshold)} | {_cell(r.detail)} |")
    else:
        lines.append("Every check passed.")
    return "\n".join(lines) + "\n"


def _drift_table(comparison: dict[str, Any]) -> list[str]:
    lines = []
    for pair in comparison["pairs"]:
        lines += [f"Linear CKA with the baseline, {_cell(pair['model'])} × {_cell(pair['dataset'])}: "
                  + ", ".join(f"{_cell(layer['path'])} {_number(layer['cka'])}" for layer in pair["layers"]), ""]
    return lines


def _cell(text: str) -> str:
    """Markdown table cell text: pipes and newlines would break the row."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def recheck(run_dir: Path, baseline: Path | None = None, overrides: Sequence[str] = ()) -> tuple[Verdict, str]:
    """``deeprep check``: re-evaluate a finished run's checks (against ``baseline`` when given, with the stored
    config's ``overrides``, e.g. other thresholds) without TensorFlow; rewrite its summary.json, summary.md and
    report.html. Returns the verdict and its line."""
    from deeprep_report.compare import compare, open_baseline
    from deeprep_report.errors import UserError
    from deeprep_report.render import REPORT, load_summary, open_store, render, stored_pipeline
    from deeprep_report.runfolder import display_path
    from deeprep_report.summary import SCHEMA_VERSION, write_json

    run_dir = Path(run_dir)
    summary = load_summary(run_dir)
    if summary["schema_version"] != SCHEMA_VERSION:
        raise UserError(f"{run_dir}/summary.json: schema version {summary['schema_version']} predates checks; "
                        f"run the pipeline again with this deeprep to check it")
    with open_store(run_dir) as store:
        pipeline = stored_pipeline(store, run_dir, overrides)
        comparison = summary.get("comparison")
        if baseline is not None:
            comparison = compare(store, summary, open_baseline(baseline), pipeline.analysis)
    verdict = audit(summary, pipeline, comparison)
    write_json(run_dir / "summary.json", summary)
    report = run_dir / (REPORT if (run_dir / REPORT).exists() else "summary.json")
    write_markdown(run_dir / MARKDOWN, summary, display_path(report))
    if report.name == REPORT:
        render(run_dir)
    return verdict, verdict.line(display_path(report))
