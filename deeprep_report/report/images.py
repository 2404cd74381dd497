"""Raster images of the report that are data, not charts: feature maps, input thumbnails, colour bars.

Each is a small palette PNG at the data's own resolution (one pixel per map
position); the page scales it up with ``image-rendering: pixelated``, so a
14 × 14 map is a few hundred bytes yet shown at 96 px or more, and its labels
are HTML text that cannot be clipped. No matplotlib figure is drawn here: a
figure per map would cost ~50 ms each, these cost well under 1 ms.
"""

from __future__ import annotations

import base64
import io
import math

import numpy as np
from matplotlib import colormaps
from PIL import Image

#: Colour maps: non-negative activations go from 0 (dark) to the largest value; signed ones diverge from 0
#: (white) to blue (negative) and red (positive) on a scale symmetric about 0.
SEQUENTIAL = "viridis"
DIVERGING = "RdBu_r"
#: The palette entry of NaN/Inf positions (light grey), after 255 colour levels.
_LEVELS = 255
_MISSING = (208, 208, 208)

#: Longest side of an input shown as a thumbnail; larger inputs are subsampled.
THUMBNAIL = 64


def png_uri(image: Image.Image) -> str:
    """A data URI of a PIL image as an optimised PNG without metadata (same pixels, same bytes)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _palette(name: str) -> list[int]:
    colors = colormaps[name].resampled(_LEVELS)(np.arange(_LEVELS))[:, :3]
    return [int(round(v)) for v in (colors * 255).ravel()] + list(_MISSING)


def scale(values: np.ndarray, signed: bool) -> tuple[float, float]:
    """The colour scale (low, high) of some maps: [-m, m] with m = max |v| when signed, else [0, max]."""
    finite = values[np.isfinite(values)]
    top = float(np.abs(finite).max()) if finite.size else 0.0
    top = top if top > 0 else 1.0
    return (-top, top) if signed else (0.0, top)


def map_uri(values: np.ndarray, low: float, high: float, signed: bool) -> str:
    """One (H, W) map as a palette PNG on the colour scale [low, high] (NaN/Inf: grey)."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    levels = np.clip((np.where(finite, values, low) - low) / (high - low) * (_LEVELS - 1), 0, _LEVELS - 1)
    index = np.where(finite, np.rint(levels), _LEVELS).astype(np.uint8)
    image = Image.fromarray(index, mode="P")
    image.putpalette(_palette(DIVERGING if signed else SEQUENTIAL))
    return png_uri(image)


def colour_bar_uri(signed: bool) -> str:
    """The colour map as a 255 × 1 strip, stretched by the page beside the scale's end values."""
    return map_uri(np.linspace(0.0, 1.0, _LEVELS)[None, :], 0.0, 1.0, signed)


def thumbnail_uri(image: np.ndarray) -> str:
    """An image in [0, 1] ((H, W) gray or (H, W, 3) colour) as a PNG at its own size."""
    pixels = np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)
    return png_uri(Image.fromarray(pixels, mode="L" if pixels.ndim == 2 else "RGB"))


def displayable(sample: np.ndarray) -> np.ndarray | None:
    """An input sample as an image in [0, 1] ((H, W) gray or (H, W, 3) colour), or None if it is not one.

    Inputs larger than :data:`THUMBNAIL` pixels are subsampled by an integer
    stride: thumbnails identify an input, and full-resolution copies of every
    exemplar would dominate the report's size.
    """
    array = np.asarray(sample, dtype=np.float64)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    elif array.ndim == 3 and array.shape[-1] in (3, 4):
        array = array[..., :3]
    elif array.ndim != 2 or min(array.shape) < 4:
        return None
    stride = max(1, math.ceil(max(array.shape[:2]) / THUMBNAIL))
    array = array[::stride, ::stride]
    finite = np.isfinite(array)
    if not finite.any():
        return np.zeros(array.shape)
    low, high = array[finite].min(), array[finite].max()
    scaled = (array - low) / (high - low) if high > low else np.zeros_like(array)
    return np.where(finite, scaled, 0.0)
