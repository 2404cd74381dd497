"""Matplotlib figures of the report, each returned as a PNG data URI.

Pure functions from numpy arrays to images: nothing here reads the store.
Figures use the object API (no pyplot state), render with Agg, and are saved
without the PNG "Software" text chunk so the same data gives the same bytes.
Feature maps are always PNG raster (never SVG): a 16-channel grid is a few
kilobytes as PNG and megabytes as vector paths.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.axis  # noqa: E402
import matplotlib.lines  # noqa: E402
import matplotlib.text  # noqa: E402

import numpy as np  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from PIL import Image  # noqa: E402

from deeprep_report.report import images  # noqa: E402

#: Texts of the figures drawn by the current :func:`draw` that reach outside their canvas.
_CLIPPED: list[str] = []


@dataclass(frozen=True)
class Job:
    """A figure to draw: a function of this module and its arguments (arrays, lists, strings), picklable so
    that a process pool can draw it (report/painter.py); the data is read before, in the rendering process."""

    function: Callable[..., str]
    args: tuple
    kwargs: dict


def job(function: Callable[..., str], *args: Any, **kwargs: Any) -> Job:
    return Job(function, args, kwargs)


def draw(work: Job) -> tuple[str, list[str]]:
    """Draw one figure: (its PNG data URI, the texts that reach outside its canvas)."""
    _CLIPPED.clear()
    uri = work.function(*work.args, **work.kwargs)
    return uri, list(_CLIPPED)

DPI = 80
_STYLE = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7,
          "axes.spines.top": False, "axes.spines.right": False}
ACCENT = "#3b6ea8"
ALERT = "#c0392b"


def to_png(figure: Figure) -> str:
    """A data URI of the figure as a 256-colour PNG, with no metadata that changes between renders.

    Agg draws RGBA; a palette of 256 colours (no dithering) keeps charts and
    colour-mapped feature maps intact (viridis has 256 colours) and makes the
    file 3-4x smaller, which is what keeps a 150-layer report openable.
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    _CLIPPED.extend(clipped_texts(figure))
    buffer.seek(0)
    with Image.open(buffer) as image:
        palette = image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    packed = io.BytesIO()
    palette.save(packed, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(packed.getvalue()).decode("ascii")


def clipped_texts(figure: Figure) -> list[str]:
    """The texts of a drawn figure (titles, labels, tick labels, notes, legends) that reach outside its canvas
    by more than a pixel: what a reader would see cut off. Uses the layout of the last draw (``savefig``)."""
    renderer = FigureCanvasAgg(figure).get_renderer()
    width, height = figure.bbox.width, figure.bbox.height
    clipped = []
    for text in _texts(figure):
        if not text.get_visible() or not text.get_text().strip():
            continue
        box = text.get_window_extent(renderer)
        if box.x0 < -1 or box.y0 < -1 or box.x1 > width + 1 or box.y1 > height + 1:
            clipped.append(text.get_text())
    return clipped


def _texts(figure: Figure) -> Iterator[matplotlib.text.Text]:
    """Every text a figure draws (tick labels only of axes that draw their axes)."""
    for axes in figure.axes:
        yield axes.title
        yield from axes.texts
        if axes.axison:
            for axis in (axes.xaxis, axes.yaxis):
                yield axis.label
                yield from _drawn_tick_labels(axis)
        if axes.get_legend() is not None:
            yield from axes.get_legend().get_texts()
    yield from figure.texts
    for legend in figure.legends:
        yield from legend.get_texts()


def _drawn_tick_labels(axis: matplotlib.axis.Axis) -> Iterator[matplotlib.text.Text]:
    """The major tick labels an axis draws: those of ticks inside its view limits (a locator also returns the
    ticks just beyond, which are not drawn)."""
    low, high = sorted(axis.get_view_interval())
    margin = 1e-9 * abs(high - low)
    for tick in axis.get_major_ticks():
        if low - margin <= tick.get_loc() <= high + margin:
            yield tick.label1


def _figure(width: float, height: float, layout: str = "constrained") -> Figure:
    """A figure for the Agg canvas; call inside ``rc_context(_STYLE)`` so its axes take the style.
    ``layout="compressed"`` for an image of fixed aspect (a heatmap), whose labels plain constrained layout
    can push off the canvas."""
    return Figure(figsize=(width, height), layout=layout)


def depth_profile(layers: Sequence[str], series: dict[str, Sequence[float | None]], ylabel: str,
                  percent: bool = False, bands: dict[str, tuple[Sequence[float | None], Sequence[float | None]]] | None = None,
                  reference: tuple[float, str] | None = None) -> str:
    """One quantity across layers in model order; one line per series (e.g. trained, random).

    ``bands`` draws a (low, high) interval around a series; ``reference`` a dashed
    horizontal line with its label (e.g. chance level).
    """
    scale = 100 if percent else 1
    with matplotlib.rc_context(_STYLE):
        figure = _figure(6.4, 1.9 + label_room(layers, 45))
        axes = figure.subplots()
        x = np.arange(len(layers))
        for index, (label, values) in enumerate(series.items()):
            color = SERIES[index % len(SERIES)]
            axes.plot(x, _array(values) * scale, marker="o", markersize=3, linewidth=1.2, label=label, color=color)
            if bands and label in bands:
                low, high = bands[label]
                axes.fill_between(x, _array(low) * scale, _array(high) * scale, color=color, alpha=0.18, linewidth=0)
        if reference is not None:
            axes.axhline(reference[0] * scale, color="#777777", linestyle="--", linewidth=0.9, label=reference[1])
        axes.set_xticks(x, _thin_labels(layers), rotation=45, ha="right")
        axes.set_xlabel("layer (model order)")
        axes.set_ylabel(ylabel + (" (%)" if percent else ""))
        axes.grid(axis="y", alpha=0.3)
        if len(series) > 1 or reference is not None:
            axes.legend(frameon=False, fontsize=7)
        return to_png(figure)


SERIES = (ACCENT, "#999999", "#d98c2b", "#5a9e6f")


def _array(values: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def similarity_matrix(layers: Sequence[str], matrix: np.ndarray, label: str,
                      columns: Sequence[str] | None = None, axis_titles: tuple[str, str] | None = None) -> str:
    """A layer × layer heatmap (e.g. CKA) with layer names on both axes and the values written in small cells.

    ``columns`` names the columns when they are another network's layers (rows: ``layers``);
    ``axis_titles`` = (rows, columns) says whose layers they are.
    """
    columns = layers if columns is None else columns
    matrix = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
    rows_n, cols_n = len(layers), len(columns)
    size = min(9.0, 1.8 + 0.32 * max(rows_n, cols_n))
    with matplotlib.rc_context(_STYLE):
        figure = _figure(size * max(0.6, cols_n / max(rows_n, cols_n)) + 0.9 + label_room(layers, 90),
                         size * max(0.6, rows_n / max(rows_n, cols_n)) + 0.2 + label_room(columns, 90), "compressed")
        axes = figure.subplots()
        image = axes.imshow(matrix, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
        axes.set_xticks(range(cols_n), _thin_labels(columns, 48), rotation=90)
        axes.set_yticks(range(rows_n), _thin_labels(layers, 48))
        if axis_titles is not None:
            axes.set_ylabel(axis_titles[0])
            axes.set_xlabel(axis_titles[1])
        if max(rows_n, cols_n) <= 16:
            for i in range(rows_n):
                for j in range(cols_n):
                    value = matrix[i, j]
                    if np.isfinite(value):
                        axes.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6,
                                  color="black" if value > 0.6 else "white")
        figure.colorbar(image, ax=axes, shrink=0.8).set_label(label)
        return to_png(figure)


def distributions(layers: Sequence[str], values: Sequence[np.ndarray], ylabel: str) -> str:
    """One box per layer (median, quartiles, 5–95 % whiskers) of a per-unit quantity."""
    with matplotlib.rc_context(_STYLE):
        figure = _figure(6.4, 2.0 + label_room(layers, 45))
        axes = figure.subplots()
        data = [np.asarray(v, dtype=float)[np.isfinite(v)] if len(v) else np.array([np.nan]) for v in values]
        axes.boxplot([d if d.size else np.array([np.nan]) for d in data], positions=range(len(layers)), widths=0.6,
                     whis=(5, 95), showfliers=False, patch_artist=True,
                     boxprops={"facecolor": ACCENT, "alpha": 0.5, "linewidth": 0.8},
                     medianprops={"color": "black", "linewidth": 1})
        axes.set_xticks(range(len(layers)), _thin_labels(layers), rotation=45, ha="right")
        axes.set_xlabel("layer (model order)")
        axes.set_ylabel(ylabel)
        axes.grid(axis="y", alpha=0.3)
        return to_png(figure)


def projections(layers: Sequence[str], points: Sequence[np.ndarray], labels: np.ndarray, names: Sequence[str]) -> str:
    """Small multiples of 2-D projections, one per layer in depth order, samples coloured by class."""
    columns = min(4, len(layers))
    rows = math.ceil(len(layers) / columns)
    colors = colormaps["tab10" if len(names) <= 10 else "tab20"]
    with matplotlib.rc_context(_STYLE):
        figure = _figure(2.3 * columns, 2.2 * rows + 0.4)
        axes = figure.subplots(rows, columns, squeeze=False)
        for cell in axes.ravel()[len(layers):]:
            cell.set_axis_off()
        for cell, layer, xy in zip(axes.ravel(), layers, points):
            for index, _ in enumerate(names):
                chosen = labels == index
                cell.scatter(xy[chosen, 0], xy[chosen, 1], s=3, color=colors(index % colors.N), linewidths=0)
            cell.set_title(layer, fontsize=7)
            cell.set_xticks([])
            cell.set_yticks([])
        handles = [matplotlib.lines.Line2D([], [], marker="o", linestyle="", markersize=4,
                                           color=colors(i % colors.N)) for i in range(len(names))]
        figure.legend(handles, list(names), loc="outside lower center", ncols=min(len(names), 10), frameon=False,
                      fontsize=7)
        return to_png(figure)


def label_room(labels: Sequence[str], rotation: float) -> float:
    """Inches that tick labels at 7 pt need across their axis when rotated by ``rotation`` degrees: figures grow
    by it, so long layer names are never squeezed off the canvas (~0.06 in per character)."""
    longest = max((len(label) for label in labels), default=0)
    return 0.06 * longest * math.sin(math.radians(rotation)) + 0.15


def _thin_labels(labels: Sequence[str], most: int = 40) -> list[str]:
    """Every label when they fit; otherwise every n-th (the others blank)."""
    step = max(1, math.ceil(len(labels) / most))
    return [label if index % step == 0 else "" for index, label in enumerate(labels)]


def unit_panels(means: np.ndarray, zero_fraction: np.ndarray, dead: np.ndarray, edges: np.ndarray,
                counts: np.ndarray) -> str:
    """Per-unit means and zero fractions, each sorted (dead units in red), and the value histogram. A layer
    without a single exact zero gets a note in place of an empty zeros chart."""
    with matplotlib.rc_context(_STYLE):
        figure = _figure(9.6, 2.3)
        left, middle, right = figure.subplots(1, 3)
        for axes, values, label in ((left, means, "unit mean"), (middle, zero_fraction * 100, "zeros (%)")):
            if axes is middle and not np.nan_to_num(values).any():
                axes.set_axis_off()
                axes.text(0.5, 0.5, "no exact zeros\nin any unit", ha="center", va="center", transform=axes.transAxes)
                continue
            order = np.argsort(-np.nan_to_num(values, nan=-np.inf), kind="stable")
            shown = np.nan_to_num(values[order])
            rank = np.arange(len(shown))
            axes.stairs(shown, np.arange(len(shown) + 1) - 0.5, fill=True, color=ACCENT, baseline=min(0, shown.min()))
            dead_rank = rank[dead[order]]
            if dead_rank.size:
                axes.plot(dead_rank, shown[dead[order]], "x", color=ALERT, markersize=4,
                          label=f"dead ({dead_rank.size})")
                axes.legend(frameon=False, loc="upper right")
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
            axes.set_xlabel("units, sorted by value")
            axes.set_ylabel(label)
        if middle.axison:
            middle.set_ylim(bottom=0)  # a share of zeros is never negative
        last = int(np.flatnonzero(counts).max(initial=0)) + 1  # drop the window's empty tail
        right.stairs(counts[:last], edges[: last + 1], fill=True, color=ACCENT)
        if counts.max(initial=0) > 0:
            right.set_yscale("log")
        right.set_xlabel("activation value")
        right.set_ylabel("count (log scale)")
        return to_png(figure)


def dense_heatmap(matrix: np.ndarray, groups: Sequence[tuple[str, int]], units: Sequence[int], signed: bool) -> str:
    """Samples (rows, grouped by class) × units (columns) of a vector layer, with a colour bar; the colour
    scale of :func:`images.scale` (diverging about 0 when the layer has negative values)."""
    with matplotlib.rc_context(_STYLE):
        figure = _figure(min(9.6, 2.0 + 0.09 * len(units)), min(7.0, 1.2 + 0.035 * len(matrix)))
        axes = figure.subplots()
        low, high = images.scale(matrix, signed)
        image = axes.imshow(matrix, aspect="auto", cmap=images.DIVERGING if signed else images.SEQUENTIAL,
                            vmin=low, vmax=high, interpolation="nearest")
        start, ticks, names = 0, [], []
        for name, size in groups:
            ticks.append(start + (size - 1) / 2)
            names.append(name)
            start += size
            if start < len(matrix):
                axes.axhline(start - 0.5, color="white", linewidth=0.8)
        axes.set_yticks(ticks, names)
        axes.set_ylabel("samples, grouped by class" if len(groups) > 1 else "samples")
        step = max(1, math.ceil(len(units) / 32))
        axes.set_xticks(range(0, len(units), step), [str(u) for u in units][::step], rotation=90)
        axes.set_xlabel("unit (highest std first)")
        figure.colorbar(image, ax=axes, shrink=0.8).set_label("activation")
        return to_png(figure)
