"""Reducing each batch on the accelerator (``extract.reduce: device``): TensorFlow ops inside the compiled forward
pass turn every layer output into what the host accumulator folds, so only those partials cross to the host.

Per layer and batch what leaves the device is: per-unit shifted sums (float64), extrema and integer counts, the
histogram codes at the accumulator's window, per-sample sums over positions (the pooled values) and peaks, the
view rows, and the full output only while ``start < full_samples``. Why this equals the host path:
``docs/design.md`` ("Reducing on the accelerator").

Exactness rests on three choices. Every float32 value is widened to float64 *exactly*, subnormals included
(TensorFlow flushes float32 subnormals to zero on the CPU, and many GPU kernels do too, so they are rebuilt from
their bits); finiteness and zeros are read from the bits. Comparisons, extrema, histogram codes and counts are
then the host kernel's own arithmetic on the same float64 values, hence bit-equal. Only sums (shifted moments,
pooled sums, sketches) run in another order than the host's sequential loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from deeprep_report.extract.accumulate import LayerAccumulator, Partials
from deeprep_report.extract.views import LayerView
from deeprep_report.stats import saturation_thresholds

SETTINGS = ("auto", "host", "device")
_EXPONENT = 0x7F800000  # float32 exponent bits: all set for Inf/NaN, none for zeros and subnormals
_TINY = math.ldexp(1.0, -149)  # the float32 subnormal step, a normal float64


def resolve(setting: str) -> str:
    """``extract.reduce`` as used: ``auto`` is ``device`` when TensorFlow sees a GPU (where the copy of every
    output to the host is the cost), else ``host`` (on a CPU the outputs reach numpy without a copy)."""
    if setting not in SETTINGS:
        raise ValueError(f"extract.reduce: expected one of {', '.join(SETTINGS)}, got {setting!r}")
    if setting != "auto":
        return setting
    import tensorflow as tf

    return "device" if tf.config.list_physical_devices("GPU") else "host"


@dataclass(frozen=True)
class DeviceLayer:
    """What the in-graph reducer of one layer needs, fixed when the forward pass is traced."""

    path: str
    shape: tuple[int, ...]  # per sample
    units: int
    positions: int
    bins: int
    thresholds: tuple[float, float] | None
    view: LayerView

    @property
    def peaks(self) -> bool:
        """Map layers (rank 4 or more) store each sample's peak; others do not need it."""
        return len(self.shape) + 1 >= 4


class DevicePlan:
    """Which layers of a pair reduce on the device, decided while the forward pass is traced (static shapes),
    with the reason for each layer kept on the host. Shared by every extraction through one compiled forward."""

    def __init__(self, pair: Any, bins: int, saturation_tol: float, views: Any) -> None:
        self.bins = bins
        self.saturation_tol = saturation_tol
        self.view_settings = views
        self.activations = {info.path: info.activation for info in pair.model.selected}
        self.layers: dict[str, DeviceLayer] = {}
        self.notes: dict[str, str] = {}

    def decide(self, path: str, shape: tuple[int | None, ...], host_reason: str | None) -> DeviceLayer | None:
        """The layer's reducer, or None (and the reason noted) when it stays on the host."""
        if host_reason is None and any(size is None for size in shape):
            host_reason = f"output shape {list(shape)} per sample is not static in the compiled forward pass"
        if host_reason is not None:
            self.notes[path] = host_reason
            return None
        sizes = tuple(int(size) for size in shape)
        units = sizes[-1] if sizes else 1
        thresholds = saturation_thresholds(self.activations[path], self.saturation_tol)
        layer = DeviceLayer(path, sizes, units, int(np.prod(sizes[:-1], dtype=np.int64)) if len(sizes) >= 2 else 1,
                            self.bins, thresholds, LayerView.of(sizes, self.view_settings))
        self.layers[path] = layer
        return layer


class DeviceState:
    """The inputs one extraction passes to each call of a device forward: the accumulators' shifts (taken from
    the first batch, kept on the device) and a guess of each histogram window (the accumulator's latest)."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths
        self.shifts: list[Any] | None = None

    def inputs(self, accumulators: dict[str, LayerAccumulator]) -> tuple[dict[str, Any], dict[str, tuple[int, int]]]:
        """(the forward's state argument, the window guessed per layer)."""
        guesses = {path: accumulators[path].window if path in accumulators else (0, 0) for path in self.paths}
        windows = np.array([[math.ldexp(1.0, -e), float(s - 1)] for e, s in guesses.values()], dtype=np.float64)
        shifts = self.shifts if self.shifts is not None else [np.zeros(0)] * len(self.paths)
        return {"first": np.bool_(self.shifts is None), "shifts": shifts, "windows": windows}, guesses

    def after(self, outputs: dict[str, Any]) -> None:
        """Keep the first batch's shifts (device tensors: no copy) for every later call."""
        if self.shifts is None:
            self.shifts = [outputs[path]["shift"] if isinstance(outputs[path], dict) else np.zeros(0)
                           for path in self.paths]


def state_signature(paths: list[str]) -> dict[str, Any]:
    import tensorflow as tf

    return {"first": tf.TensorSpec((), tf.bool), "shifts": [tf.TensorSpec((None,), tf.float64) for _ in paths],
            "windows": tf.TensorSpec((len(paths), 2), tf.float64)}


def reduce_layer(y: Any, layer: DeviceLayer, first: Any, shift: Any, window: Any) -> dict[str, Any]:
    """In the graph: the partials of one layer's batch ``y`` (B, ...) float32 (see the module docstring)."""
    import tensorflow as tf

    y3 = tf.reshape(y, [tf.shape(y)[0], -1, layer.units])
    w, finite, bits = _widen(y3)
    own = w[0, 0]
    shift = tf.cond(first, lambda: tf.where(tf.math.is_finite(own), own, tf.zeros_like(own)), lambda: shift)
    d = tf.where(finite, w - shift, _filled(w, 0.0))
    axes = [0, 1]
    moments = tf.stack([tf.reduce_sum(d, axes), tf.reduce_sum(d * d, axes),
                        tf.reduce_min(tf.where(finite, w, _filled(w, np.inf)), axes),
                        tf.reduce_max(tf.where(finite, w, _filled(w, -np.inf)), axes)])
    counting = [finite, tf.equal(bits, 0)]
    if layer.thresholds is not None:
        low, high = layer.thresholds
        counting.append(finite & ((w <= low) | (w >= high)))
    counts = tf.stack([tf.reduce_sum(tf.cast(flags, tf.int64), axes) for flags in counting])
    out = {"output": y, "shift": shift, "moments": moments, "counts": counts,
           "codes": _codes(w, finite, window[0], window[1], layer.bins), "sums": tf.reduce_sum(w, 1)}
    if layer.peaks:
        nan = bits > _EXPONENT
        out["peaks"] = tf.reduce_max(tf.where(nan, _filled(w, -np.inf), w), 1)
    view = layer.view
    if view.makes_rows:
        flat = tf.reshape(y, [tf.shape(y)[0], -1])
        matrix = view.sketch_matrix()
        out["view"] = flat if matrix is None else _sketch(tf.reshape(w, tf.shape(flat)), matrix)
    return out


def histogram_function(bins: int) -> Callable[[Any, tuple[int, int]], np.ndarray]:
    """The second step of a histogram whose window moved: one layer's batch (still on the device) binned at a
    window the host chose, as the host kernel codes it; returns the codes' counts (bins + 3,) int64."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec(None, tf.float32), tf.TensorSpec((), tf.float64),
                                  tf.TensorSpec((), tf.float64)], autograph=False)
    def codes(y: Any, scale: Any, offset: Any) -> Any:
        w, finite, _ = _widen(tf.reshape(y, [-1]))
        return _codes(w, finite, scale, offset, bins)

    def at(y: Any, window: tuple[int, int]) -> np.ndarray:
        exponent, start = window
        return codes(y, math.ldexp(1.0, -exponent), float(start - 1)).numpy().astype(np.int64)

    return at


def fold_layer(out: dict[str, Any], layer: DeviceLayer, accumulator: LayerAccumulator, guess: tuple[int, int],
               histogram: Callable[[Any, tuple[int, int]], np.ndarray]) -> tuple[np.ndarray, Any, Any]:
    """Fold one layer's device partials into its accumulator; return what the writer stores of the batch:
    pooled (B, C), peaks (B, C) or None, view rows or None — float32, cast here as the host path casts them."""
    moments, counts = out["moments"].numpy(), out["counts"].numpy()
    sums = out["sums"].numpy()
    codes = out["codes"].numpy().astype(np.int64)
    saturated = counts[2] if len(counts) > 2 else np.zeros(layer.units, dtype=np.int64)

    def codes_at(window: tuple[int, int]) -> np.ndarray:
        return codes if window == guess else histogram(out["output"], window)

    shift = out["shift"].numpy() if accumulator.shift is None else None  # later batches: the same, on the device
    accumulator.fold_partials(Partials(shift, len(sums) * layer.positions, counts[0], moments[0],
                                       moments[1], moments[2], moments[3], counts[1], saturated), codes_at)
    pooled = (sums / layer.positions).astype(np.float32)
    peaks = out["peaks"].numpy().astype(np.float32) if "peaks" in out else None
    view = np.asarray(out["view"].numpy(), dtype=np.float32) if "view" in out else None
    return pooled, peaks, view


def _widen(y: Any) -> tuple[Any, Any, Any]:
    """(float64 values, finite mask, |bits|) of float32 ``y``: the widening is exact for subnormals too, which
    a plain cast may flush to zero (TensorFlow on the CPU does)."""
    import tensorflow as tf

    raw = tf.bitcast(y, tf.int32)
    bits = tf.bitwise.bitwise_and(raw, 0x7FFFFFFF)
    subnormal = (bits > 0) & (bits < 0x00800000)
    magnitude = tf.cast(bits, tf.float64) * _TINY  # exact for subnormals: their value is bits * 2**-149
    exact = tf.where(raw < 0, -magnitude, magnitude)
    return tf.where(subnormal, exact, tf.cast(y, tf.float64)), bits < _EXPONENT, bits


def _filled(like: Any, value: float) -> Any:
    """A scalar of ``like``'s type, which ``tf.where`` broadcasts (no full tensor is filled)."""
    import tensorflow as tf

    return tf.constant(value, like.dtype)


def _codes(w: Any, finite: Any, scale: Any, offset: Any, bins: int) -> Any:
    """Counts of the host kernel's histogram codes (``kernels._bin_code``) at window (scale, offset): bin + 1,
    0 below, bins + 1 above, bins + 2 non-finite."""
    import tensorflow as tf

    q = tf.floor(w * scale) - offset
    q = tf.where(q > 0, q, _filled(q, 0.0))
    q = tf.where(q < bins + 1, q, _filled(q, bins + 1))
    codes = tf.where(finite, tf.cast(q, tf.int32), tf.constant(bins + 2, tf.int32))
    return tf.math.bincount(tf.reshape(codes, [-1]), minlength=bins + 3, maxlength=bins + 3)


def _sketch(w: Any, matrix: tuple[np.ndarray, np.ndarray, tuple[int, int]]) -> Any:
    """The count sketch of flat float64 rows (B, F) (:meth:`LayerView.sketch_matrix`), accumulated in float64."""
    import tensorflow as tf

    sketch = tf.sparse.SparseTensor(*matrix)
    return tf.transpose(tf.sparse.sparse_dense_matmul(sketch, w, adjoint_b=True))
