"""The audit part of the report: verdict banner, check results, changes since the baseline, cross-model CKA.

Everything here comes from ``summary.json`` (schema 3); older summaries have
no checks, and these sections are then left out. Figures are drawn through the
report builder's ``draw`` so a failing one becomes a note, like every figure.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from deeprep_report import figures
from deeprep_report.checks import FAIL, NOT_EVALUATED, PASS, Verdict

Draw = Callable[[str, str, str, Callable[[], str]], Any]
#: Order of check results in the report: what needs attention first.
_ORDER = {("fail", FAIL): 0, ("warn", FAIL): 1, ("fail", NOT_EVALUATED): 2, ("warn", NOT_EVALUATED): 2,
          ("fail", PASS): 3, ("warn", PASS): 3}
#: Statistics whose change is shown in the "Changes since baseline" table.
CHANGED = (("mean", "mean"), ("std", "std"), ("dead_fraction", "dead units"), ("zero_fraction", "zeros"))


def checks_context(summary: dict[str, Any], anchors: dict[tuple[str, str, str], str]) -> dict[str, Any] | None:
    """The verdict banner and the check results table (problems first)."""
    checks = summary.get("checks")
    if not checks:
        return None
    verdict = Verdict(**checks["verdict"])
    rows = []
    for result in sorted(checks["results"], key=lambda r: _ORDER[(r["severity"], r["status"])]):
        label = ("FAIL" if result["severity"] == "fail" else "warn") if result["status"] == FAIL else result["status"]
        rows.append({**result, "label": label, "css": label.lower().replace(" ", "-"),
                     "anchor": anchors.get((result["model"], result["dataset"], result["layer"]), "")})
    return {"status": verdict.status, "text": f"{verdict.status}: {verdict.counts(with_passed=True)}.",
            "defaults": checks["defaults"], "rows": rows,
            "problems": sum(row["status"] != PASS for row in rows)}


def changes_context(summary: dict[str, Any], draw: Draw) -> dict[str, Any] | None:
    """"Changes since baseline": per compared pair, CKA by layer (figure) and the change of each statistic."""
    comparison = summary.get("comparison")
    if not comparison:
        return None
    flagged = _flagged(summary)
    pairs = []
    for index, pair in enumerate(comparison["pairs"]):
        names = [layer["path"] for layer in pair["layers"]]
        values = [layer["cka"] for layer in pair["layers"]]
        title = f"{pair['model']} × {pair['dataset']}"
        figure = draw(f"{title}: CKA with the baseline", f"Linear CKA of each layer of {pair['model']} with the "
                      "same layer in the baseline run",
                      "Per layer, linear CKA between this run's and the baseline run's pooled activations of the same "
                      "samples: 1 is the same representation up to rotation and scale; low values show where the "
                      "model changed most.",
                      lambda names=names, values=values: figures.depth_profile(
                          names, {"CKA with baseline": values}, "linear CKA"))
        rows = []
        for layer in pair["layers"]:
            probe = layer["probe"]
            rows.append({"path": layer["path"], "cka": layer["cka"],
                         "changes": [(layer["stats"][key]["baseline"], layer["stats"][key]["current"])
                                     for key, _ in CHANGED],
                         "probe": (probe["baseline"], probe["current"]) if probe else None,
                         "flagged": flagged.get((pair["model"], pair["dataset"], layer["path"]), [])})
        lowest = min(((v, n) for n, v in zip(names, values) if v is not None), default=None)
        pairs.append({"id": f"changes-{index}", "title": title, "baseline_model": pair["baseline_model"],
                      "figure": figure, "rows": rows, "columns": [label for _, label in CHANGED],
                      "lowest": {"layer": lowest[1], "cka": lowest[0]} if lowest else None,
                      "unmatched": pair["unmatched"]})
    return {"baseline": comparison["baseline"], "pairs": pairs, "unmatched_pairs": comparison["unmatched_pairs"]}


def cross_model_figures(summary: dict[str, Any], draw: Draw) -> list[Any]:
    """One layers × layers CKA heatmap per pair of audited models on a shared dataset."""
    shown = []
    for entry in summary.get("cross_model") or []:
        first, second = entry["models"]
        rows, columns = entry["layers"]
        matrix = np.asarray([[np.nan if v is None else v for v in row] for row in entry["matrix"]], dtype=float)
        shown.append(draw(
            f"cross-model CKA {first} × {second} on {entry['dataset']}",
            f"Linear CKA between the layers of {first} and the layers of {second} on {entry['dataset']}",
            f"Linear CKA ({entry['estimator']}) between every layer of {first} (rows) and every layer of {second} "
            f"(columns) on the same {entry['samples']:,} samples of {entry['dataset']}: a bright diagonal means the "
            "two models build similar representations at the same depth.",
            lambda matrix=matrix, rows=rows, columns=columns, first=first, second=second: figures.similarity_matrix(
                rows, matrix, "linear CKA", columns=columns, axis_titles=(first, second))))
    return shown


def _flagged(summary: dict[str, Any]) -> dict[tuple[str, str, str], list[str]]:
    """Per layer, the drift rules that failed there (to mark rows of the changes table)."""
    out: dict[tuple[str, str, str], list[str]] = {}
    for result in (summary.get("checks") or {}).get("results", []):
        if result["status"] == FAIL and result["rule"] in ("drift", "stat_drift"):
            out.setdefault((result["model"], result["dataset"], result["layer"]), []).append(result["rule"])
    return out
