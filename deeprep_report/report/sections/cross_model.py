"""The Across models section: a layers × layers CKA heatmap per pair of audited models on a shared dataset."""

from __future__ import annotations

from typing import Any

import numpy as np

from deeprep_report.report import figures
from deeprep_report.report.context import ReportContext


def build(ctx: ReportContext) -> list[Any]:
    """One layers × layers CKA heatmap per pair of audited models on a shared dataset."""
    shown = []
    for entry in ctx.summary.get("cross_model") or []:
        first, second = entry["models"]
        rows, columns = entry["layers"]
        matrix = np.asarray([[np.nan if v is None else v for v in row] for row in entry["matrix"]], dtype=float)
        shown.append(ctx.figure(
            f"cross-model CKA {first} × {second} on {entry['dataset']}",
            f"Linear CKA between the layers of {first} and the layers of {second} on {entry['dataset']}",
            f"Linear CKA ({entry['estimator']}) between every layer of {first} (rows) and every layer of {second} "
            f"(columns) on the same {entry['samples']:,} samples of {entry['dataset']}: a bright diagonal means the "
            "two models build similar representations at the same depth.",
            lambda matrix=matrix, rows=rows, columns=columns, first=first, second=second: figures.job(figures.similarity_matrix,
                rows, matrix, "linear CKA", columns=columns, axis_titles=(first, second))))
    return shown
