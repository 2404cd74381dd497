"""The Findings section: what a reviewer should look at, computed by the audit stage from the summary."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from deeprep_report.audit.findings import Finding, find
from deeprep_report.audit.verdict import PASS
from deeprep_report.report.context import ReportContext


def build(ctx: ReportContext) -> list[Finding]:
    """The run's findings, most severe first; :func:`linked` adds the layer sections' anchors once they exist."""
    return find(ctx.summary, ctx.settings.saturation_finding, {})


def linked(found: list[Finding], anchors: dict[tuple[str, str, str], str]) -> list[Finding]:
    """Findings linked to the layer sections (``anchors``: (model, dataset, layer) → section id)."""
    return [replace(f, anchor=anchors.get(f.layer, "")) if f.layer is not None else f for f in found]


def flagged_layers(found: list[Finding], summary: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """Per (model, dataset), the layers with a finding or a check result other than a pass: a report that
    shows a chosen set of layers (report.layers: auto) still gives each of them a section."""
    flagged: dict[tuple[str, str], set[str]] = {}
    for finding in found:
        if finding.layer is not None:
            flagged.setdefault(finding.layer[:2], set()).add(finding.layer[2])
    for result in (summary.get("checks") or {}).get("results", []):
        if result["status"] != PASS and result.get("layer"):
            flagged.setdefault((result["model"], result["dataset"]), set()).add(result["layer"])
    return flagged
