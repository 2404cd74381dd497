"""The Checks section and the verdict banner: every check result, problems first (``summary.json``
schema 3; older summaries have no checks, and the section is left out)."""

from __future__ import annotations

from typing import Any

from deeprep_report.audit.verdict import FAIL, NOT_EVALUATED, PASS, CheckResult, Verdict, status_word

#: Order of check results in the report: what needs attention first.
_ORDER = {("fail", FAIL): 0, ("warn", FAIL): 1, ("fail", NOT_EVALUATED): 2, ("warn", NOT_EVALUATED): 2,
          ("fail", PASS): 3, ("warn", PASS): 3}


def build(summary: dict[str, Any], anchors: dict[tuple[str, str, str], str]) -> dict[str, Any] | None:
    """The verdict banner and the check results table (problems first)."""
    checks = summary.get("checks")
    if not checks:
        return None
    verdict = Verdict(**checks["verdict"])
    rows = []
    for result in sorted(checks["results"], key=lambda r: _ORDER[(r["severity"], r["status"])]):
        label = status_word(CheckResult(**result))
        rows.append({**result, "label": label, "css": label.lower().replace(" ", "-"),
                     "anchor": anchors.get((result["model"], result["dataset"], result["layer"]), "")})
    return {"status": verdict.status, "counts": verdict.counts(with_passed=True),
            "text": f"{verdict.status}: {verdict.counts(with_passed=True)}.",
            "defaults": checks["defaults"], "rows": rows,
            "problems": sum(row["status"] != PASS for row in rows)}
