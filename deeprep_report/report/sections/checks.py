"""The Checks section and the verdict banner: every check result, problems first (``summary.json``
schema 3; older summaries have no checks, and the section is left out)."""

from __future__ import annotations

from typing import Any

from deeprep_report.audit.verdict import FAIL, NOT_EVALUATED, PASS, CheckResult, Verdict, status_word
from deeprep_report.config.rules import RULE_MODELS

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
            "defaults": checks["defaults"], "rows": rows, "rules": rules(checks["definitions"]),
            "problems": sum(row["status"] != PASS for row in rows)}


def rules(definitions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The checks the run used, each with its rule's definition and why it matters (the rule's own docstring
    and ``why``: one source for the docs of the config and the report), and its settings as configured."""
    shown = []
    for definition in definitions:
        model = RULE_MODELS.get(definition["rule"])
        if model is None:  # a rule this deeprep no longer has (an old run): its results still show
            continue
        settings = {key: value for key, value in definition.items() if key != "rule"}
        shown.append({"rule": definition["rule"], "definition": " ".join(model.__doc__.replace("``", "").split()),
                      "why": model.why, "settings": settings})
    return shown
