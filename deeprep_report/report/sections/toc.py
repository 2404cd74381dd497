"""The table of contents: every section in page order, with its anchor."""

from __future__ import annotations

from typing import Any


def build(has_checks: bool, pairs: list[dict[str, Any]], changes: dict[str, Any] | None,
          cross_model: list[Any]) -> list[dict[str, Any]]:
    toc = []
    if has_checks:
        toc.append({"id": "checks", "title": "Checks", "level": 1})
    if changes:
        toc.append({"id": "changes", "title": "Changes since baseline", "level": 1})
    toc += [{"id": "overview", "title": "Overview", "level": 1},
            {"id": "models", "title": "Models", "level": 2},
            {"id": "datasets", "title": "Datasets", "level": 2},
            {"id": "findings", "title": "Findings", "level": 1}]
    if cross_model:
        toc.append({"id": "cross-model", "title": "Across models", "level": 1})
    for pair in pairs:
        toc.append({"id": pair["id"], "title": pair["title"], "level": 1})
        if pair["analysis"]:
            toc.append({"id": pair["analysis"]["id"], "title": "Depth analysis", "level": 2})
        toc.append({"id": f"{pair['id']}-depth", "title": "Depth profile", "level": 2})
        toc += [{"id": layer["id"], "title": layer["path"], "level": 2} for layer in pair["layers"]]
    toc.append({"id": "provenance", "title": "Provenance", "level": 1})
    return toc
