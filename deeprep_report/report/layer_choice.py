"""Which captured layers get a section of their own (``report.layers``).

A ResNet50 has 176 layers; a section with a gallery and exemplars for each made
a 34 MB report that took ten minutes to draw. With ``report.layers: auto`` (the
default) a model with more captured layers than ``report.max_layers`` shows in
full a chosen set that follows its structure, read from the architecture table
alone (no TensorFlow):

* its first captured layer with weights (where edges and colour blobs are) and
  its last;
* every **block output**: a layer that the whole graph passes through (no
  connection skips over it) and that feeds two or more layers — a residual or
  dense block ends there and the next one starts;
* every **stage end**: the last captured layer before the spatial resolution
  changes, padding and cropping aside (a plain chain of convolutions has no
  blocks, only stages);

thinned evenly to ``report.max_layers`` (stage ends first). A model with no
blocks to follow (a stack of transformer layers, each feeding only the next)
gets evenly spaced layers with weights instead, up to half of
``report.max_layers``. Every flagged layer
(a finding, or a check that did not pass) that is not in the set gets a brief
section: its statistics and unit charts (at most ``report.max_layers`` of them,
the earliest: a NaN that propagates flags every layer after the one that made
it). The others appear in the tables and depth figures only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deeprep_report.config import ReportSection
from deeprep_report.config.selectors import select

log = logging.getLogger("deeprep")


#: Layers that pad or crop their input: they change a map's size without starting a stage.
_FRAMING = ("ZeroPadding", "Cropping")


@dataclass(frozen=True)
class Choice:
    """The layers of a pair by how they are shown, each in model order."""

    full: list[str]
    brief: list[str] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)
    automatic: bool = False  # chosen by ``report.layers: auto`` (not every layer, not the user's list)


def choose(settings: ReportSection, pair: dict[str, Any], architecture: list[dict[str, Any]],
           flagged: set[str]) -> Choice:
    """The pair's layers in full, in brief and not shown, by ``report.layers`` (see the module docstring)."""
    names = [layer["path"] for layer in pair["layers"]]
    if settings.layers == "all" or (settings.layers == "auto" and len(names) <= settings.max_layers):
        return Choice(names)
    if settings.layers != "auto":
        picked = set(select(settings.layers, {layer["path"]: layer.get("class_name") for layer in pair["layers"]}))
        if not picked:
            log.warning("report.layers matches none of the %d captured layers of %s × %s: no layer sections",
                        len(names), pair.get("model"), pair.get("dataset"))
        return Choice([n for n in names if n in picked], hidden=[n for n in names if n not in picked])
    rows = {row["path"]: row for row in architecture}
    resizing = {n for n in names if str(rows.get(n, {}).get("class_name", "")).startswith(_FRAMING)}
    shapes = {layer["path"]: layer.get("output_shape") for layer in pair["layers"] if layer["path"] not in resizing}
    weighted = [n for n in names if rows.get(n, {}).get("params")]
    ends = [names[-1], weighted[0] if weighted else names[0]]  # the last layer, and where edges are
    structure = _thin(stage_ends([n for n in names if n not in resizing], shapes), ends, settings.max_layers, names)
    chosen = _thin([n for n in block_outputs(architecture, names) if n not in structure], structure,
                   settings.max_layers, names)
    if len(chosen) < settings.max_layers // 2:  # no blocks to follow (a stack of transformer layers): spread out
        chosen = _thin([n for n in weighted or names if n not in chosen], chosen, settings.max_layers // 2, names)
    chosen = set(chosen)
    full = [n for n in names if n in chosen]
    brief = [n for n in names if n in flagged and n not in chosen][: settings.max_layers]  # the earliest: where a
    # NaN that propagates downstream starts
    shown = chosen | set(brief)
    return Choice(full, brief, [n for n in names if n not in shown], automatic=True)


def block_outputs(architecture: list[dict[str, Any]], captured: list[str]) -> list[str]:
    """Captured layers, in model order, that every path of the graph passes through and that feed two or more
    layers: where one block of a residual or dense network ends and the next begins."""
    order = {row["path"]: index for index, row in enumerate(architecture)}
    covered = np.zeros(len(architecture) + 1, dtype=np.int64)
    fan_out = np.zeros(len(architecture), dtype=np.int64)
    for row in architecture:
        for source in set(row.get("inputs") or []):  # MultiHeadAttention(x, x) reads x once
            if source in order:
                start, end = order[source], order[row["path"]]
                fan_out[start] += 1
                if end - start > 1:  # the connection skips over the layers between
                    covered[start + 1] += 1
                    covered[end] -= 1
    skipped_over = np.cumsum(covered)[:-1]
    wanted = set(captured)
    return [row["path"] for index, row in enumerate(architecture)
            if row["path"] in wanted and not skipped_over[index] and fan_out[index] >= 2]


def stage_ends(names: list[str], shapes: dict[str, Any]) -> list[str]:
    """The last layer of each spatial resolution: a map layer whose next layer's maps have another size."""
    def spatial(name: str) -> tuple | None:
        shape = shapes.get(name)
        return tuple(shape[1:-1]) if shape is not None and len(shape) >= 4 else None

    return [a for a, b in zip(names, names[1:]) if spatial(a) is not None and spatial(a) != spatial(b)]


def _thin(candidates: list[str], kept: list[str], most: int, names: list[str]) -> list[str]:
    """``kept`` and evenly spaced ``candidates``, at most ``most`` together, in model order; ``kept`` is thinned
    too (from its end) when it alone is over ``most``."""
    kept = list(dict.fromkeys(kept))[:most]
    room = most - len(kept)
    if len(candidates) > room:
        candidates = [candidates[int(i)] for i in np.linspace(0, len(candidates) - 1, room).round()] if room else []
    return sorted(set(kept) | set(candidates), key=names.index)
