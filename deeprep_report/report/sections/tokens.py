"""The Token analysis section of a sequence pair (docs/text.md): the mask, sample texts, token probes with
control tasks per depth, token CKA; and, per sequence layer, its units' top contexts and nearest tokens."""

from __future__ import annotations

from typing import Any

import numpy as np

from deeprep_report.report import figures
from deeprep_report.report.context import ReportContext
from deeprep_report.report.formatting import number

SAMPLE_TEXTS = 6
NEAREST_PROBES, NEAREST = 6, 6


def build(ctx: ReportContext, pair_id: str, pair: dict[str, Any], twin: dict[str, Any] | None) -> dict[str, Any] | None:
    tokens = (pair.get("analysis") or {}).get("tokens")
    info = pair.get("tokens")
    if not info:
        return None
    where = f"{pair['model']} × {pair['dataset']}: token analysis"
    random = ((twin or {}).get("analysis") or {}).get("tokens")
    figures_shown = []
    table = None
    if tokens:
        names = tokens["layers"]
        for task, entry in tokens["tasks"].items():
            if not entry["accuracy"]:
                continue
            series = {"task": entry["accuracy"]}
            if any(value is not None for value in entry["control"]):
                series["control task"] = entry["control"]
            if random and task in random["tasks"] and random["tasks"][task]["accuracy"]:
                series["task, random weights"] = random["tasks"][task]["accuracy"]
            figures_shown.append(ctx.figure(
                f"{where}: {task}", f"Token probe accuracy for {task} in each sequence layer",
                f"Token probe '{task}': {entry['description']}. Held-out accuracy of a linear probe on "
                f"{entry['tokens']:,} sampled real tokens (split by sequence)" + (
                    ", and on its control task (the same label drawn at random once per token type); the gap is the "
                    "selectivity" if "control task" in series else " (no control task: its control would be a "
                    "coarsening of the task itself)") + ". Dashed: chance.",
                lambda series=series, entry=entry: figures.job(figures.depth_profile,
                    names, series, "token probe accuracy",
                    reference=(entry["chance"], "chance") if entry["chance"] is not None else None)))
        if tokens.get("cka"):
            figures_shown.append(ctx.figure(
                f"{where}: token CKA", "Linear CKA between sequence layers on the sampled tokens",
                f"Linear CKA ({tokens['cka']['estimator']}) between every pair of sequence layers on the same "
                f"{tokens['tokens']:,} real tokens.",
                lambda: figures.job(figures.similarity_matrix, names, np.asarray(tokens["cka"]["matrix"], dtype=float),
                                                  "token CKA")))
        table = _table(tokens)
    return {"id": f"{pair_id}-tokens", "info": info, "analysis": tokens, "table": table,
            "figures": figures_shown, "samples": _samples(ctx, pair)}


def _table(tokens: dict[str, Any]) -> dict[str, Any]:
    tasks = [(name, entry) for name, entry in tokens["tasks"].items() if entry["accuracy"]]
    header = ["layer"] + [f"{name}: accuracy / control (selectivity)" for name, _ in tasks]
    extra = [("effective rank", tokens.get("effective_rank")), ("token CKA with random weights",
                                                                 tokens.get("cka_with_random"))]
    header += [title for title, values in extra if values]
    rows = []
    for i, layer in enumerate(tokens["layers"]):
        cells = [layer]
        for _, entry in tasks:
            accuracy, control, selectivity = entry["accuracy"][i], entry["control"][i], entry["selectivity"][i]
            if accuracy is None or control is None:
                cells.append(number(accuracy))  # n/a, or a task without a control (identity)
            else:
                cells.append(f"{number(accuracy)} / {number(control)} ({selectivity:+.2f})")
        cells += [number(values[i]) for _, values in extra if values]
        rows.append(cells)
    return {"header": header, "rows": rows}


def _samples(ctx: ReportContext, pair: dict[str, Any]) -> list[dict[str, str]]:
    labels = ctx.labels(pair["dataset"])
    dataset = ctx.datasets[pair["dataset"]]
    tokens = ctx.tokens(pair["model"], pair["dataset"])
    rows = list(range(min(SAMPLE_TEXTS, len(tokens["ids"]))))
    texts = sequence_texts(ctx, pair, rows)
    return [{"text": text, "label": ctx.class_name(dataset, labels, row), "tokens": int(tokens["mask"][row].sum())}
            for row, text in zip(rows, texts)]


def sequence_texts(ctx: ReportContext, pair: dict[str, Any], rows: list[int]) -> list[str]:
    """The texts of these samples as given, or their real tokens joined when the data kept no text."""
    texts = ctx.texts(pair["dataset"], rows)
    if texts is not None:
        return texts
    tokens = ctx.tokens(pair["model"], pair["dataset"])
    return [" ".join(token_strings(ctx, pair, tokens["ids"][row][tokens["mask"][row]])) for row in rows]


def token_strings(ctx: ReportContext, pair: dict[str, Any], ids: np.ndarray) -> list[str]:
    vocabulary = (ctx.text(pair["dataset"]) or {}).get("vocabulary")
    return [vocabulary[i] if vocabulary is not None and 0 <= i < len(vocabulary) else f"#{i}" for i in map(int, ids)]


def contexts(ctx: ReportContext, pair: dict[str, Any], layer: dict[str, Any], ranked: np.ndarray) -> list[dict] | None:
    """Per shown unit, its top contexts: tokens of the window with the unit's activation as an intensity."""
    stored = ctx.store.contexts(pair["model"], pair["dataset"], layer["path"])
    if stored is None:
        return None
    tokens = ctx.tokens(pair["model"], pair["dataset"])
    labels = ctx.labels(pair["dataset"])
    dataset = ctx.datasets[pair["dataset"]]
    window = (stored["window"].shape[2] - 1) // 2
    out = []
    for unit in ranked[: ctx.settings.exemplars.units].tolist():
        values = stored["value"][:, unit]
        top = float(np.nanmax(np.abs(stored["window"][:, unit]))) if np.isfinite(values).any() else 0.0
        rows = []
        for j in np.flatnonzero(np.isfinite(values)):
            sample, position = int(stored["sample"][j, unit]), int(stored["position"][j, unit])
            if not (0 <= sample < len(tokens["ids"]) and 0 <= position < tokens["length"]):
                raise ValueError(f"stored context at sample {sample}, position {position} is outside the data")
            span = range(max(0, position - window), min(tokens["length"], position + window + 1))
            strings = token_strings(ctx, pair, tokens["ids"][sample][list(span)])
            cells = []
            for text, at in zip(strings, span):
                activation = stored["window"][j, unit, at - position + window]
                if not tokens["mask"][sample][at]:
                    continue
                alpha = float(np.clip(activation / top, 0, 1)) if top > 0 and np.isfinite(activation) else 0.0
                glued = text.startswith("##") and len(text) > 2  # a WordPiece continuation joins its word
                cells.append({"text": text[2:] if glued else text, "glue": glued, "alpha": f"{alpha:.2f}",
                              "centre": at == position,
                              "value": number(float(activation)) if np.isfinite(activation) else "n/a"})
            rows.append({"value": number(float(values[j])), "sample": sample, "tokens": cells,
                         "label": ctx.class_name(dataset, labels, sample)})
        out.append({"unit": unit, "rows": rows})
    return out


def nearest_tokens(ctx: ReportContext, pair: dict[str, Any], layer: dict[str, Any],
                   reads_input: bool) -> list[tuple[str, str]] | None:
    """For an embedding layer that reads the token ids: the most frequent sampled token types and their nearest
    types (cosine of the types' mean token vectors in this layer, among types sampled at least twice)."""
    if "Embedding" not in layer["class_name"] or not reads_input:
        return None
    view = ctx.store.token_view(pair["model"], pair["dataset"], layer["path"])
    tokens = ctx.tokens(pair["model"], pair["dataset"])
    if view is None:
        return None
    sample, position = tokens["positions"][:, 0], tokens["positions"][:, 1]
    types = tokens["ids"][sample, position]
    values, inverse, counts = np.unique(types, return_inverse=True, return_counts=True)
    keep = counts >= 2
    if keep.sum() <= NEAREST:
        return None
    sums = np.zeros((len(values), view.shape[1]))
    np.add.at(sums, inverse, np.asarray(view[()], dtype=np.float64))
    means = sums[keep] / counts[keep, None]
    unit = means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    kept_types, kept_counts = values[keep], counts[keep]
    similarity = unit @ unit.T
    out = []
    for i in np.argsort(-kept_counts, kind="stable")[:NEAREST_PROBES]:
        order = [j for j in np.argsort(-similarity[i], kind="stable") if j != i][:NEAREST]
        names = token_strings(ctx, pair, kept_types[[i, *order]])
        out.append((names[0], ", ".join(f"{n} ({similarity[i, j]:.2f})" for n, j in zip(names[1:], order))))
    return out
