"""``summary.md``: the verdict and the checks that did not pass, for CI job summaries and PR comments.

Pasted into a CI job summary or a pull-request comment, Markdown is rendered, so every name (models,
datasets, layers, runs: chosen by whoever made the run) goes in as a code span (:func:`_code`: no HTML, link,
image or heading can come out of it) and every free text as escaped text (:func:`_text`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from deeprep_report.audit.verdict import number_text, one_line, results_of, status_word, verdict_of
from deeprep_report.store import write_atomic

MARKDOWN = "summary.md"


def write_markdown(path: Path, summary: dict[str, Any], report: str) -> None:
    """``summary.md``: the verdict and the checks that did not pass, for CI job summaries and PR comments."""
    write_atomic(path, markdown(summary, report))


def markdown(summary: dict[str, Any], report: str) -> str:
    verdict = verdict_of(summary)
    results = results_of(summary)
    lines = [f"## deeprep: {_code(summary['run']['name'])} — {verdict.status}", "",
             f"**{verdict.status} {verdict.counts()}** — {_code(report)} ({verdict.passed} checks passed)", ""]
    comparison = summary.get("comparison")
    if comparison:
        lines += [f"Compared with baseline run {_code(comparison['baseline']['name'])} "
                  f"({_text(comparison['baseline']['started'])}).", ""]
        lines += _drift_table(comparison)
    shown = [r for r in results if r.status != "pass"]
    if shown:
        lines += ["| status | severity | rule | model × dataset | layer | value | threshold | detail |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in shown:
            lines.append(f"| {status_word(r)} | {r.severity} | `{r.rule}` | {_code(r.model)} × {_code(r.dataset)} | "
                         f"{_code(r.layer) if r.layer else '–'} | {number_text(r.value)} | {number_text(r.threshold)} | "
                         f"{_text(r.detail)} |")
    else:
        lines.append("Every check passed.")
    if summary["run"].get("id"):
        lines += ["", f"Run id {_code(summary['run']['id'])}."]
    return "\n".join(lines) + "\n"


def _drift_table(comparison: dict[str, Any]) -> list[str]:
    lines = []
    for pair in comparison["pairs"]:
        lines += [f"Linear CKA with the baseline, {_code(pair['model'])} × {_code(pair['dataset'])}: "
                  + ", ".join(f"{_code(layer['path'])} {number_text(layer['cka'])}" for layer in pair["layers"]), ""]
    return lines


_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#+\-.!|~:/])")


def _code(text: object) -> str:
    """A name as an inline code span: its content is never parsed (no HTML, links, emphasis), fenced by more
    backticks than it holds; ``|`` escaped, which GitHub tables need even inside code spans."""
    plain = one_line(text).replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", plain)), default=0) + 1)
    return f"{fence} {plain} {fence}"


def _text(text: object) -> str:
    """Free text (a check's detail) escaped: HTML special characters as entities, Markdown punctuation with a
    backslash (which also breaks ``https://`` and ``www.`` autolinks apart)."""
    plain = one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    return _PUNCTUATION.sub(r"\\\1", plain)
