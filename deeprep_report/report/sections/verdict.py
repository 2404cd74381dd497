"""The report's own verdict line under the header: every figure drawn (or which could not be), and how many
findings there are."""

from __future__ import annotations

from typing import Any

from deeprep_report.report.context import ReportContext


def build(ctx: ReportContext, findings: list[Any]) -> dict[str, Any]:
    """Call after every other section: it counts the figures they drew."""
    noted = f"{len(findings)} finding{'s' if len(findings) != 1 else ''}"
    if not ctx.failed:
        return {"ok": True, "text": f"All {ctx.drawn} figures computed; {noted}."}
    return {"ok": False, "text": f"{len(ctx.failed)} of {ctx.drawn} figures could not be drawn: "
                                 f"{'; '.join(ctx.failed)}. {noted.capitalize()}."}
