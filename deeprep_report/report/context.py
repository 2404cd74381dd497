"""Everything the report shows, gathered from ``summary.json`` and the store, figures drawn.

The result is plain data (strings, numbers, lists, dicts) for the templates,
documented in ``docs/report.md``. Each report section is built by its own
module under ``sections/`` (named like its template, ``templates/sections/``);
this module holds what they share: the run being rendered, the figure drawing
that turns a failure into a note, and reads of labels and stored inputs.
Choices that shape what a reader sees are rules, applied the same way
everywhere:

* channels and units shown: the highest per-unit standard deviation first
  (a dead or constant unit has nothing to show);
* gallery samples: the first stored sample of each class in class order, then
  the next stored samples, up to ``report.gallery.samples``;
* heatmap rows: up to ``report.heatmap_samples`` samples, an equal share per
  class, in sample order;
* exemplars: the ``report.exemplars.k`` samples with the largest activation
  of the unit over all N samples: its peak (maximum over positions) for a
  map layer, its pooled value (mean over real positions) otherwise;
* colours: a diverging scale centred at 0 for a layer with negative values,
  a sequential one from 0 otherwise.

A figure that fails to draw becomes a note in its place and in the verdict,
never a failed report.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from deeprep_report.config import ReportSection
from deeprep_report.report import figures, painter
from deeprep_report.report import images as raster
from deeprep_report.store import StoreReader, audited_pairs, h5_name, pair_key, random_twins, read_rows

log = logging.getLogger("deeprep")


@dataclass
class Shown:
    """A figure in the report: its PNG data URI, or the parts of a figure laid out in HTML (a gallery's rows of
    maps), or why it could not be drawn; its alt text and caption."""

    src: str | None
    alt: str
    caption: str
    error: str | None = None
    parts: Any = None


@dataclass(frozen=True)
class SharedImage:
    """An image drawn once per report however often it appears (an input shown in many layers' galleries and
    exemplars): a CSS class whose background it is (``report.html.j2`` writes the rules), and its size."""

    css_class: str
    uri: str
    width: int
    height: int

    @property
    def pixelated(self) -> bool:
        """Small images are scaled up without smoothing (each pixel stays a square)."""
        return max(self.width, self.height) <= 48


class ReportContext:
    """The run being rendered, shared by every section builder."""

    def __init__(self, summary: dict[str, Any], store: StoreReader, settings: ReportSection) -> None:
        self.summary = summary
        self.store = store
        self.settings = settings
        self.drawn = 0
        self.failed: list[str] = []
        self.datasets = {d["name"]: d for d in summary["datasets"]}
        #: random-weights twins: their pairs appear only as the comparison curves of their trained model
        self.baselines = random_twins(summary)
        self.twin_pairs = {(self.baselines[p["model"]], p["dataset"]): p for p in summary["pairs"]
                           if p["model"] in self.baselines}
        self._text: dict[str, Any] = {}
        self._tokens: dict[tuple[str, str], Any] = {}
        self._shared: dict[tuple, SharedImage] = {}
        self._architectures: dict[str, dict[str, dict[str, Any]]] = {}
        self._shows_inputs: dict[tuple[str, str | None], bool] = {}
        self._jobs: list[tuple[str, Shown, figures.Job]] = []

    def architecture(self, model: str) -> dict[str, dict[str, Any]]:
        """A model's architecture rows (summary.json ``models[].layers``) by layer path, in model order."""
        if model not in self._architectures:
            rows = next((m["layers"] for m in self.summary["models"] if m["name"] == model), [])
            self._architectures[model] = {row["path"]: row for row in rows}
        return self._architectures[model]

    def shared_image(self, key: tuple, image: np.ndarray) -> SharedImage:
        """The report's one copy of an image in [0, 1] (gray or RGB), registered under ``key`` on first use."""
        if key not in self._shared:
            height, width = image.shape[:2]
            self._shared[key] = SharedImage(f"im{len(self._shared)}", raster.thumbnail_uri(image), width, height)
        return self._shared[key]

    def shared_images(self) -> list[SharedImage]:
        return list(self._shared.values())

    def text(self, dataset: str) -> dict[str, Any] | None:
        """A text dataset's vocabulary (read once); texts are read by row with :meth:`texts`."""
        if dataset not in self._text:
            self._text[dataset] = self.store.text(dataset)
        return self._text[dataset]

    def texts(self, dataset: str, rows: Any) -> list[str] | None:
        return self.store.texts(dataset, rows)

    def tokens(self, model: str, dataset: str) -> dict[str, Any] | None:
        """A sequence pair's token ids, mask and token sample (read once), with ``length``."""
        if (model, dataset) not in self._tokens:
            self._tokens[(model, dataset)] = self.store.tokens(model, dataset)
        return self._tokens[(model, dataset)]

    def audited_pairs(self) -> list[dict[str, Any]]:
        return audited_pairs(self.summary)

    def figure(self, where: str, alt: str, caption: str, prepare: Callable[[], figures.Job]) -> Shown:
        """One matplotlib figure: ``prepare`` reads its data now; it is drawn by :meth:`draw_figures` (in a
        pool of processes for a big report). A failure becomes a note in its place and in the verdict."""
        shown = Shown(None, alt, caption)
        self.drawn += 1
        try:
            self._jobs.append((where, shown, prepare()))
        except Exception as exc:  # noqa: BLE001 - a figure never takes the report down
            self._failure(where, shown, exc)
        return shown

    def panel(self, where: str, alt: str, caption: str, build: Callable[[], Any]) -> Shown:
        """The parts of one figure laid out in HTML (no drawing to wait for); a failure is handled as
        :meth:`figure`'s."""
        shown = Shown(None, alt, caption)
        self.drawn += 1
        try:
            shown.parts = build()
        except Exception as exc:  # noqa: BLE001 - a figure never takes the report down
            self._failure(where, shown, exc)
        return shown

    def draw_figures(self) -> None:
        """Draw every figure prepared so far (before the verdict, which counts the failures)."""
        jobs, self._jobs = self._jobs, []
        workers = painter.workers_for(len(jobs), self.settings.workers)
        if workers > 1:
            log.info("report: drawing %d figures in %d processes", len(jobs), workers)
        for (where, shown, _), result in zip(jobs, painter.draw_all([job for _, _, job in jobs], workers)):
            if isinstance(result, BaseException):
                self._failure(where, shown, result)
                continue
            shown.src, clipped = result
            for text in clipped:
                log.warning("report: %s: text %r reaches outside its canvas", where, text)

    def _failure(self, where: str, shown: Shown, exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        self.failed.append(f"{where} ({reason})")
        log.warning("report: %s could not be drawn: %s", where, reason)
        shown.error = reason

    def labels(self, dataset: str) -> np.ndarray | None:
        group = self.store.file[f"datasets/{h5_name(dataset)}"]
        return group["labels"][()] if "labels" in group else None

    def class_name(self, dataset: dict[str, Any], labels: np.ndarray | None, row: int) -> str:
        if labels is None:
            return ""
        names = dataset["class_names"] or []
        label = int(labels[row])
        return names[label] if label < len(names) else str(label)

    def input_images(self, dataset: str, model: str | None, rows: np.ndarray) -> list[np.ndarray] | None:
        """Stored inputs at these sample rows as displayable images, or None (not stored, or not images)."""
        inputs = self.store.file.get(f"datasets/{h5_name(dataset)}/inputs")
        if inputs is None or not len(rows):
            return None
        names = list(inputs)
        if model is not None:
            binding = self.store.json_attr(pair_key(model, dataset), "binding")
            names = [h5_name(array) for array in binding.values() if h5_name(array) in inputs] or names
        for name in names:
            samples = read_rows(inputs[name], np.asarray(rows))
            images = [raster.displayable(sample) for sample in samples]
            if all(image is not None for image in images):
                return images
        return None

    def shows_inputs(self, dataset: str, model: str | None) -> bool:
        """Whether this pair's stored inputs are images (read from one sample, once per pair)."""
        if (dataset, model) not in self._shows_inputs:
            self._shows_inputs[(dataset, model)] = self.input_images(dataset, model, np.arange(1)) is not None
        return self._shows_inputs[(dataset, model)]

    def input_thumbnails(self, dataset: str, model: str | None, rows: np.ndarray) -> list[SharedImage] | None:
        """The stored inputs at these sample rows as shared images (one copy each in the report), or None."""
        images = self.input_images(dataset, model, rows)
        if images is None:
            return None
        return [self.shared_image(("input", dataset, model, int(row)), image) for row, image in zip(rows, images)]
