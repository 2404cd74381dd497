"""``summary.md``: the verdict and the checks that did not pass, for CI job summaries and PR comments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deeprep_report.audit.verdict import NOT_EVALUATED, results_of, verdict_of
from deeprep_report.store import write_atomic

MARKDOWN = "summary.md"


def write_markdown(path: Path, summary: dict[str, Any], report: str) -> None:
    """``summary.md``: the verdict and the checks that did not pass, for CI job summaries and PR comments."""
    write_atomic(path, markdown(summary, report))


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
