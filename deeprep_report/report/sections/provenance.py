"""The Provenance section: what produced these numbers, and the resolved config stored with the run."""

from __future__ import annotations

from typing import Any

from deeprep_report.report.context import ReportContext


def build(ctx: ReportContext) -> dict[str, Any]:
    return {**ctx.summary["provenance"], "config": ctx.store.attrs().get("config", "")}
