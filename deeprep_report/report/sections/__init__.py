"""The report's sections, one module each, named like the template that shows it
(``templates/sections/<name>.html.j2``). :func:`build` calls them in page order and
returns the template context (documented in ``docs/report.md``).
"""

from __future__ import annotations

from typing import Any

from deeprep_report.config import ReportSection
from deeprep_report.report.context import ReportContext
from deeprep_report.report.sections import (
    changes, checks, cross_model, findings, overview, pair, provenance, toc, verdict,
)
from deeprep_report.store import StoreReader


def build(summary: dict[str, Any], store: StoreReader, settings: ReportSection) -> dict[str, Any]:
    """The template context of ``report.html.j2``: every section, figures drawn."""
    ctx = ReportContext(summary, store, settings)
    models = overview.models(ctx)
    datasets = overview.datasets(ctx)
    found = findings.build(ctx)
    flagged = findings.flagged_layers(found, summary)
    pairs = [pair.build(ctx, index, entry, flagged.get((entry["model"], entry["dataset"]), set()))
             for index, entry in enumerate(ctx.audited_pairs())]
    anchors = {(p["model"], p["dataset"], layer["path"]): layer["id"] for p in pairs for layer in p["layers"]}
    found = findings.linked(found, anchors)
    changed = changes.build(ctx)
    crossed = cross_model.build(ctx)
    ctx.draw_figures()
    return {
        "title": f"deeprep report: {summary['run']['name']}",
        "run": summary["run"], "tool": summary["tool"], "timings": summary["timings"],
        "checks": checks.build(summary, anchors), "changes": changed, "cross_model": crossed,
        "verdict": verdict.build(ctx, found), "models": models, "datasets": datasets, "pairs": pairs,
        "findings": found, "provenance": provenance.build(ctx),
        "toc": toc.build(bool(summary.get("checks")), pairs, changed, crossed),
        "shared_images": ctx.shared_images(),
    }
