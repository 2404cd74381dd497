"""The Changes since baseline section: per compared pair, CKA with the baseline by layer, the change of each
statistic and of the layer's weights (``summary.json``'s ``comparison`` block): what changed in the model next
to what changed in its representations."""

from __future__ import annotations

from typing import Any

from deeprep_report.audit.verdict import FAIL
from deeprep_report.report import figures
from deeprep_report.report.context import ReportContext
from deeprep_report.report.formatting import number, percent

#: Statistics whose change is shown in the "Changes since baseline" table, and their format: shares are
#: percentages, as in the layer sections and depth profiles.
CHANGED = (("mean", "mean", number), ("std", "std", number), ("dead_fraction", "dead units", percent),
           ("zero_fraction", "zeros", percent))


def build(ctx: ReportContext) -> dict[str, Any] | None:
    """"Changes since baseline": per compared pair, CKA by layer (figure) and the change of each statistic."""
    summary = ctx.summary
    comparison = summary.get("comparison")
    if not comparison:
        return None
    flagged = _flagged(summary)
    weights = {item["model"]: {layer["path"]: layer["relative_change"] for layer in item["layers"]}
               for item in comparison.get("weights") or []}  # schema 6
    pairs = []
    for index, pair in enumerate(comparison["pairs"]):
        names = [layer["path"] for layer in pair["layers"]]
        values = [layer["cka"] for layer in pair["layers"]]
        title = f"{pair['model']} × {pair['dataset']}"
        figure = ctx.figure(
            f"{title}: CKA with the baseline", f"Linear CKA of each layer of {pair['model']} with the same layer in "
            "the baseline run",
            "Per layer, linear CKA between this run's and the baseline run's views of the same samples: "
            "1 is the same representation up to rotation and scale; low values show where the model changed most.",
            lambda names=names, values=values: figures.job(figures.depth_profile, names, {"CKA with baseline": values},
                                                                     "linear CKA"))
        changed = weights.get(pair["model"], {})
        rows = []
        for layer in pair["layers"]:
            probe = layer["probe"]
            rows.append({"path": layer["path"], "cka": layer["cka"], "weight_change": changed.get(layer["path"]),
                         "changes": [(shown(layer["stats"][key]["baseline"]), shown(layer["stats"][key]["current"]))
                                     for key, _, shown in CHANGED],
                         "probe": (probe["baseline"], probe["current"]) if probe else None,
                         "flagged": flagged.get((pair["model"], pair["dataset"], layer["path"]), [])})
        lowest = min(((v, n) for n, v in zip(names, values) if v is not None), default=None)
        moved = max(((v, n) for n, v in changed.items() if v is not None), default=None)
        pairs.append({"id": f"changes-{index}", "title": title, "baseline_model": pair["baseline_model"],
                      "figure": figure, "rows": rows, "columns": [label for _, label, _ in CHANGED],
                      "lowest": {"layer": lowest[1], "cka": lowest[0]} if lowest else None,
                      "weights_compared": bool(changed),
                      "most_changed_weights": {"layer": moved[1], "change": moved[0]} if moved else None,
                      "unmatched": pair["unmatched"], "notes": pair.get("notes", [])})
    return {"baseline": comparison["baseline"], "pairs": pairs, "unmatched_pairs": comparison["unmatched_pairs"]}


def _flagged(summary: dict[str, Any]) -> dict[tuple[str, str, str], list[str]]:
    """Per layer, the drift rules that failed there (to mark rows of the changes table)."""
    out: dict[tuple[str, str, str], list[str]] = {}
    for result in (summary.get("checks") or {}).get("results", []):
        if result["status"] == FAIL and result["rule"] in ("drift", "stat_drift"):
            out.setdefault((result["model"], result["dataset"], result["layer"]), []).append(result["rule"])
    return out
