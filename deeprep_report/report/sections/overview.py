"""The Overview section: each model (architecture table) and each dataset (class counts, a strip of its first
samples as page images with their class as text)."""

from __future__ import annotations

from typing import Any

import numpy as np

from deeprep_report.report.context import ReportContext
from deeprep_report.report.formatting import number
from deeprep_report.store import h5_name

STRIP_SAMPLES = 12


def models(ctx: ReportContext) -> list[dict[str, Any]]:
    """Each audited model plus its anchor, its random-weights twin's name (or None) and, per architecture row,
    the weights audit's formatted cells (or None). A twin has the same architecture: its table is not repeated."""
    twins = {trained: twin for twin, trained in ctx.baselines.items()}
    out = []
    for model in ctx.summary["models"]:
        if model["name"] in ctx.baselines:
            continue
        audit = {row["path"]: row for row in model.get("weights") or []}
        layers = [{**layer, "weights": _weight_cells(audit.get(layer["path"]))} for layer in model["layers"]]
        out.append({**model, "layers": layers, "anchor": f"model-{h5_name(model['name'])}",
                    "weights_audited": model.get("weights") is not None, "twin": twins.get(model["name"])})
    return out


def _weight_cells(row: dict[str, Any] | None) -> dict[str, str] | None:
    if row is None:
        return None
    return {"norm": number(row["norm"]), "max_abs": number(row["max_abs"]),
            "nonfinite": f"{row['nonfinite']:,}", "sigma": number(row["top_singular_value"]),
            "stable_rank": number(row["stable_rank"]), "bad": bool(row["nonfinite"])}


def datasets(ctx: ReportContext) -> list[dict[str, Any]]:
    return [_dataset(ctx, dataset) for dataset in ctx.summary["datasets"]]


def _dataset(ctx: ReportContext, dataset: dict[str, Any]) -> dict[str, Any]:
    strip = None
    rows = np.arange(min(STRIP_SAMPLES, dataset["n_samples"]))
    thumbnails = ctx.input_thumbnails(dataset["name"], None, rows)
    if thumbnails is not None:
        labels = ctx.labels(dataset["name"])
        strip = ctx.panel(
            f"{dataset['name']}: sample strip", f"The first {len(rows)} samples of dataset {dataset['name']}",
            "The first samples in run order, with their class.",
            lambda: [{"image": image, "sample": int(row), "label": ctx.class_name(dataset, labels, int(row))}
                     for row, image in zip(rows, thumbnails)])
    return {**dataset, "strip": strip}
