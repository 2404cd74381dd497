"""Fused one-pass batch kernels (numba) behind the streaming statistics.

Why a kernel and not TensorFlow ops: measured on MobileNetV2 (96x96, 87 conv
and activation layers, batch 64) the in-graph reductions for these statistics
cost about 4x the forward pass, because each TensorFlow op is one more pass
over ~600 MB of activations. These kernels read each activation once,
vectorised over units; see ``docs/design.md`` for the measurements.

Layout: a batch arrives as ``y`` of shape (B, S, C): B samples, S positions per
sample (spatial positions or tokens; 1 for dense layers), C units. Accumulators
are per thread (first axis T) and summed by the caller.

Histogram bin codes: bin ``k`` of the window covers
``[(first_index + k) / inv_width, (first_index + k + 1) / inv_width)`` and is
counted at code ``k + 1``; code 0 is below the window, ``nbins + 1`` above it,
``nbins + 2`` non-finite. ``hist`` is (T, 4, nbins + 3): four interleaved
copies break the store-to-load chains of runs of equal codes (ReLU zeros).

Two moment kernels: ``fast`` assumes every value is finite (the common case;
a non-finite value shows up as a non-finite per-sample sum, and the caller
then reruns the batch through ``careful``, which masks every value).
"""

from __future__ import annotations

import os
import tempfile
import threading
import types
from pathlib import Path

# numba's OpenMP workers spin while idle by default; next to TensorFlow's own
# threads that steals the cores the forward pass needs (measured on MobileNetV2:
# extraction 8.7 s with spinning workers, 5.6 s with sleeping ones). Must be set
# before numba loads its threading layer; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _cache_folder(defaults: list[Path] | None = None, fallback: Path | None = None) -> bool:
    """Whether numba can cache the kernels, choosing where before numba is imported.

    numba caches next to this file, else in the user's cache folder (``defaults``), and fails with "cannot
    cache function" when neither is writable (a package installed read-only, a read-only home). Then a
    private folder in the temporary folder (``fallback``) is used through ``NUMBA_CACHE_DIR``, else no cache:
    kernels compile on each run, nothing fails.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return True
    if defaults is None:
        defaults = [Path(__file__).parent / "__pycache__",
                    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "numba"]
    if fallback is None:
        fallback = Path(tempfile.gettempdir()) / f"deeprep-numba-{os.getuid() if hasattr(os, 'getuid') else 0}"
    if any(_writable(folder) for folder in defaults):
        return True
    if _writable(fallback):
        os.environ["NUMBA_CACHE_DIR"] = str(fallback)
        return True
    return False


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


_CACHE = _cache_folder()

import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

EXTRA_CODES = 3
_OPTIONS = {"cache": _CACHE, "boundscheck": False, "nogil": True}


def _fast(y, shift, count_saturation, sat_lo, sat_hi, inv_width, first_index, nbins,
          psum, pmax, count, s1, s2, vmin, vmax, zeros, saturated, hist, binbuf):  # pragma: no cover - compiled
    """One pass over a batch of finite values: per-sample sums and maxima over positions, and this batch's
    per-unit partials."""
    B, S, C = y.shape
    T = s2.shape[0]
    top = np.float64(nbins + 1)
    scale = np.float64(inv_width)
    offset = np.float64(first_index - 1)
    for t in prange(T):
        b0, b1 = (t * B) // T, ((t + 1) * B) // T
        _reset(t, b0, b1, psum, pmax, count, s1, s2, vmin, vmax, zeros, saturated, hist)
        a1, a2, lo, hi, z, sat, buf = s1[t], s2[t], vmin[t], vmax[t], zeros[t], saturated[t], binbuf[t]
        for b in range(b0, b1):
            p, m = psum[b], pmax[b]
            for s in range(S):
                row = y[b, s]
                base = s * C
                for c in range(C):
                    v = row[c]
                    w = np.float64(v)
                    p[c] += w
                    m[c] = w if w > m[c] else m[c]
                    d = w - shift[c]
                    a1[c] += d
                    a2[c] += d * d
                    lo[c] = v if v < lo[c] else lo[c]
                    hi[c] = v if v > hi[c] else hi[c]
                    z[c] += v == 0
                    buf[base + c] = _bin_code(w, scale, offset, top)
                if count_saturation:
                    for c in range(C):
                        v = row[c]
                        sat[c] += (v <= sat_lo) | (v >= sat_hi)
            _count_codes(buf, S * C, hist[t])
        count[t, :] = (b1 - b0) * S


def _careful(y, shift, count_saturation, sat_lo, sat_hi, inv_width, first_index, nbins,
             psum, pmax, count, s1, s2, vmin, vmax, zeros, saturated, hist, binbuf):  # pragma: no cover - compiled
    """Like ``_fast`` but every partial except ``psum`` skips non-finite values (and ``count`` counts the rest);
    ``pmax`` skips NaN (an Inf is a maximum)."""
    B, S, C = y.shape
    T = s2.shape[0]
    top = np.float64(nbins + 1)
    scale = np.float64(inv_width)
    offset = np.float64(first_index - 1)
    for t in prange(T):
        b0, b1 = (t * B) // T, ((t + 1) * B) // T
        _reset(t, b0, b1, psum, pmax, count, s1, s2, vmin, vmax, zeros, saturated, hist)
        n_t, a1, a2, lo, hi, z, sat, buf = count[t], s1[t], s2[t], vmin[t], vmax[t], zeros[t], saturated[t], binbuf[t]
        for b in range(b0, b1):
            p, m = psum[b], pmax[b]
            for s in range(S):
                row = y[b, s]
                base = s * C
                for c in range(C):
                    v = row[c]
                    p[c] += v
                    m[c] = np.float64(v) if v > m[c] else m[c]
                    finite = (v - v) == 0
                    d = np.float64(v) - shift[c] if finite else 0.0
                    n_t[c] += finite
                    a1[c] += d
                    a2[c] += d * d
                    lo[c] = v if (finite & (v < lo[c])) else lo[c]
                    hi[c] = v if (finite & (v > hi[c])) else hi[c]
                    z[c] += v == 0
                    sat[c] += count_saturation & finite & ((v <= sat_lo) | (v >= sat_hi))
                    buf[base + c] = _bin_code(np.float64(v), scale, offset, top) if finite else np.uint8(nbins + 2)
            _count_codes(buf, S * C, hist[t])


def _histogram(y, inv_width, first_index, nbins, hist, binbuf):  # pragma: no cover - compiled
    """Histogram codes only: for a batch that reached outside the running window."""
    B, S, C = y.shape
    T = hist.shape[0]
    top = np.float64(nbins + 1)
    scale = np.float64(inv_width)
    offset = np.float64(first_index - 1)
    for t in prange(T):
        hist[t] = 0
        buf = binbuf[t]
        for b in range((t * B) // T, ((t + 1) * B) // T):
            for s in range(S):
                row = y[b, s]
                base = s * C
                for c in range(C):
                    v = row[c]
                    buf[base + c] = _bin_code(np.float64(v), scale, offset, top) if (v - v) == 0 else np.uint8(nbins + 2)
            _count_codes(buf, S * C, hist[t])


def _sketch(x, buckets, signs, out):  # pragma: no cover - compiled
    """Count sketch of each row of ``x`` (B, F) into ``out`` (B, D): out[b, buckets[f]] += signs[f] * x[b, f]."""
    B, F = x.shape
    D = out.shape[1]
    for b in prange(B):
        row = out[b]
        for d in range(D):
            row[d] = 0.0
        values = x[b]
        for f in range(F):
            row[buckets[f]] += signs[f] * values[f]


@njit(**_OPTIONS)
def fold(values, count, s1, s2, vmin, vmax, zeros, saturated, hist, run_count, run_s1, run_s2, run_min, run_max,
         run_zeros, run_nonfinite, run_saturated, run_codes):  # pragma: no cover - compiled
    """Add a batch's partials (T rows) to the running per-unit totals; returns the values outside the
    histogram window. Histogram codes are added only when none fell outside (the caller re-bins then)."""
    T = count.shape[0]
    C = run_count.shape[0]  # partial rows may be padded past C
    for t in range(T):
        for c in range(C):
            run_count[c] += count[t, c]
            run_s1[c] += s1[t, c]
            run_s2[c] += s2[t, c]
            run_min[c] = min(run_min[c], vmin[t, c])
            run_max[c] = max(run_max[c], vmax[t, c])
            run_zeros[c] += zeros[t, c]
            run_saturated[c] += saturated[t, c]
    for c in range(C):
        finite = 0
        for t in range(T):
            finite += count[t, c]
        run_nonfinite[c] += values - finite
    codes = hist.sum(axis=0).sum(axis=0)
    outside = codes[0] + codes[len(codes) - 2]
    if outside == 0:
        run_codes += codes
    return outside


@njit(inline="always", **_OPTIONS)
def _reset(t, b0, b1, psum, pmax, count, s1, s2, vmin, vmax, zeros, saturated, hist):  # pragma: no cover - compiled
    """Zero one thread's partials (and its samples' sums and maxima): scratch arrays are reused across batches."""
    psum[b0:b1] = 0.0
    pmax[b0:b1] = -np.inf
    count[t] = 0
    s1[t] = 0.0
    s2[t] = 0.0
    vmin[t] = np.inf
    vmax[t] = -np.inf
    zeros[t] = 0
    saturated[t] = 0
    hist[t] = 0


@njit(inline="always", **_OPTIONS)
def _bin_code(value, scale, offset, top):  # pragma: no cover - compiled
    """Histogram code of a finite value: its bin + 1, clamped to 0 (below) and ``top`` (above)."""
    q = np.floor(value * scale) - offset
    q = q if q > 0 else 0.0
    return np.uint8(q if q < top else top)


@njit(inline="always", **_OPTIONS)
def _count_codes(buf, n, h):  # pragma: no cover - compiled
    i = 0
    while i + 4 <= n:
        h[0, buf[i]] += 1
        h[1, buf[i + 1]] += 1
        h[2, buf[i + 2]] += 1
        h[3, buf[i + 3]] += 1
        i += 4
    while i < n:
        h[0, buf[i]] += 1
        i += 1


def _renamed(function, suffix: str):
    """A copy of ``function`` under another name. numba keys its on-disk cache by qualified name, not by
    compile options: without distinct names the parallel variant silently loads the serial one's cache."""
    copy = types.FunctionType(function.__code__, function.__globals__, function.__name__ + suffix,
                              function.__defaults__, function.__closure__)
    copy.__qualname__ = function.__qualname__ + suffix
    return copy


class _Dispatch:
    """One kernel compiled twice: serially for small batches (a parallel launch costs ~0.5 ms), in parallel
    for large ones. Each variant compiles on first use and is cached on disk by numba."""

    def __init__(self, function) -> None:
        self.serial = njit(parallel=False, **_OPTIONS)(_renamed(function, "_serial"))
        self.parallel = njit(parallel=True, **_OPTIONS)(_renamed(function, "_parallel"))

    def pick(self, y: np.ndarray) -> tuple[object, int]:
        """(kernel, accumulator rows) for this batch."""
        if y.nbytes >= PARALLEL_BYTES and threads() > 1:
            return self.parallel, threads()
        return self.serial, 1


#: Batches of activations at least this large use every core.
PARALLEL_BYTES = 2 << 20

fast = _Dispatch(_fast)
careful = _Dispatch(_careful)
histogram = _Dispatch(_histogram)
sketch = _Dispatch(_sketch)


def warm_up() -> None:
    """Load every kernel variant from numba's on-disk cache (compiling it the first time).

    Loading costs ~0.5 s per process; the CLI does it on a background thread
    while TensorFlow imports, which hides it (measured: 3.6 s for both together,
    the same as TensorFlow alone).
    """
    y = np.zeros((2, 1, 2), dtype=np.float32)
    for variant in (fast, careful, histogram):
        for kernel, rows in ((variant.serial, 1), (variant.parallel, threads())):
            _call_with_scratch(variant, kernel, rows, y)
    for kernel in (sketch.serial, sketch.parallel):
        kernel(np.zeros((2, 3), dtype=np.float32), np.zeros(3, dtype=np.int64), np.ones(3, dtype=np.float32),
               np.zeros((2, 2), dtype=np.float32))
    one = lambda dtype=np.float64: np.zeros((1, 2), dtype=dtype)  # noqa: E731
    run = lambda dtype=np.float64: np.zeros(2, dtype=dtype)  # noqa: E731
    fold(2, one(np.int64), one(), one(), one(np.float32), one(np.float32), one(np.int64), one(np.int64),
         np.zeros((1, 4, 7), dtype=np.int64), run(np.int64), run(), run(), run(), run(), run(np.int64),
         run(np.int64), run(np.int64), np.zeros(7, dtype=np.int64))


def _call_with_scratch(variant: _Dispatch, kernel, rows: int, y: np.ndarray) -> None:
    units = y.shape[2]
    part = lambda dtype=np.float64: np.zeros((rows, units), dtype=dtype)  # noqa: E731
    hist = np.zeros((rows, 4, 4 + EXTRA_CODES), dtype=np.int64)
    buf = np.zeros((rows, y.shape[1] * units), dtype=np.uint8)
    if variant is histogram:
        kernel(y, 1.0, 0, 4, hist, buf)
        return
    kernel(y, np.zeros(units), True, 0.0, 1.0, 1.0, 0, 4, np.zeros((y.shape[0], units)), np.zeros((y.shape[0], units)),
           part(np.int64), part(),
           part(), part(np.float32), part(np.float32), part(np.int64), part(np.int64), hist, buf)


def warm_up_in_background() -> threading.Thread:
    thread = threading.Thread(target=warm_up, name="deeprep-numba-warm-up", daemon=True)
    thread.start()
    return thread


def threads() -> int:
    """Threads a parallel kernel uses (numba's default: one per core; NUMBA_NUM_THREADS to change)."""
    return int(numba.get_num_threads())
