"""The Findings section: what a reviewer should look at, computed by the audit stage from the summary."""

from __future__ import annotations

from deeprep_report.audit.findings import Finding, find
from deeprep_report.report.context import ReportContext


def build(ctx: ReportContext, anchors: dict[tuple[str, str, str], str]) -> list[Finding]:
    """Findings linked to the layer sections (``anchors``: (model, dataset, layer) → section id)."""
    return find(ctx.summary, ctx.settings.saturation_finding, anchors)

