"""Figure hygiene: no text off the canvas, integer unit axes, no empty charts; the raster maps of galleries."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from deeprep_report.report import figures, images

LONG = [f"block_{i}_expand_relu_with_a_long_name" for i in range(30)]


@pytest.fixture
def drawn(monkeypatch):
    """The figures the functions build (saved as usual, so their layout is that of the report)."""
    made = []
    save = figures.to_png

    def keep(figure):
        made.append(figure)
        return save(figure)

    monkeypatch.setattr(figures, "to_png", keep)
    return made


def _cut_off() -> str:
    with figures.matplotlib.rc_context(figures._STYLE):
        figure = figures._figure(3, 2)
        axes = figure.subplots()
        axes.text(-0.4, 0.5, "cut off", transform=axes.transAxes)
        axes.set_ylabel("inside")
        return figures.to_png(figure)


def test_a_text_off_the_canvas_is_found(drawn):
    uri, clipped = figures.draw(figures.job(_cut_off))
    assert uri.startswith("data:image/png;base64,") and clipped == ["cut off"]
    assert figures.clipped_texts(drawn[0]) == ["cut off"]
    assert figures.draw(figures.job(figures.depth_profile, ["a"], {"x": [1.0]}, "y"))[1] == []


def test_no_figure_text_is_clipped_even_with_long_layer_names(drawn):
    rng = np.random.default_rng(0)
    matrix = rng.uniform(size=(30, 30))
    figures.similarity_matrix(LONG, matrix, "CKA")
    figures.similarity_matrix(LONG[:5], matrix[:5, :5], "CKA")
    figures.similarity_matrix(LONG[:8], matrix[:8, :12], "CKA", columns=[n + "_x" for n in LONG[:12]],
                              axis_titles=("trained", "other"))
    figures.depth_profile(LONG, {"trained": list(matrix[0]), "random weights": list(matrix[1])}, "probe accuracy",
                          reference=(0.1, "chance"))
    figures.distributions(LONG, list(matrix), "selectivity")
    figures.projections(LONG[:6], [rng.normal(size=(50, 2)) for _ in range(6)], np.arange(50) % 10,
                        [f"class {i}" for i in range(10)])
    figures.dense_heatmap(matrix[:, :20] - 0.5, [("a long class name indeed", 15), ("b", 15)], list(range(20)), True)
    figures.unit_panels(rng.normal(size=300), rng.uniform(size=300), rng.uniform(size=300) < 0.1,
                        np.linspace(-3, 3, 65), rng.integers(0, 1000, 64))
    assert len(drawn) == 8
    for figure in drawn:
        assert figures.clipped_texts(figure) == []


def test_unit_axes_have_integer_ticks_and_no_zeros_means_a_note(drawn):
    rng = np.random.default_rng(1)
    figures.unit_panels(rng.normal(size=7), np.zeros(7), np.zeros(7, bool), np.linspace(-3, 3, 65),
                        rng.integers(1, 50, 64))
    left, middle, _ = drawn[0].axes
    ticks = [tick for tick in left.get_xticks() if left.get_xlim()[0] <= tick <= left.get_xlim()[1]]
    assert ticks and all(float(tick).is_integer() for tick in ticks)
    assert not middle.axison and [t.get_text() for t in middle.texts] == ["no exact zeros\nin any unit"]
    figures.unit_panels(rng.normal(size=7), np.linspace(0, 0.5, 7), np.zeros(7, bool), np.linspace(-3, 3, 65),
                        rng.integers(1, 50, 64))
    zeros = drawn[1].axes[1]
    assert zeros.axison and zeros.get_ylim()[0] == 0  # a share of zeros is never negative


def _pixels(uri: str) -> tuple[np.ndarray, list[int]]:
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as image:
        assert image.mode == "P"
        return np.asarray(image), image.getpalette()


def test_a_map_is_a_palette_png_at_its_own_resolution():
    values = np.array([[0.0, 1.0, 2.0], [np.nan, 4.0, np.inf]])
    low, high = images.scale(values, signed=False)
    assert (low, high) == (0.0, 4.0)  # from 0, not from the smallest value; non-finite ignored
    index, palette = _pixels(images.map_uri(values, low, high, signed=False))
    assert index.shape == (2, 3)
    np.testing.assert_array_equal(index, [[0, 64, 127], [255, 254, 255]])
    assert palette[255 * 3 : 255 * 3 + 3] == [208, 208, 208]  # NaN/Inf grey
    viridis = np.rint(np.array(figures.colormaps["viridis"].resampled(255)(254)[:3]) * 255).astype(int).tolist()
    assert palette[254 * 3 : 254 * 3 + 3] == viridis


def test_signed_maps_diverge_from_zero():
    values = np.array([[-0.5, 0.0, 2.0]])
    low, high = images.scale(values, signed=True)
    assert (low, high) == (-2.0, 2.0)
    index, palette = _pixels(images.map_uri(values, low, high, signed=True))
    assert index.tolist() == [[95, 127, 254]]  # 0 is the middle of the scale
    middle = palette[127 * 3 : 127 * 3 + 3]
    assert min(middle) > 230  # RdBu's centre is near white
    blue, red = palette[0:3], palette[254 * 3 : 254 * 3 + 3]
    assert blue[2] > blue[0] and red[0] > red[2]


def test_thumbnails_keep_their_pixels():
    gray = np.linspace(0, 1, 20).reshape(4, 5)
    with Image.open(io.BytesIO(base64.b64decode(images.thumbnail_uri(gray).split(",", 1)[1]))) as image:
        assert image.size == (5, 4)
        np.testing.assert_array_equal(np.asarray(image), np.rint(gray * 255).astype(np.uint8))
    big = np.zeros((224, 224, 3))
    assert images.displayable(big).shape == (56, 56, 3)  # subsampled by an integer stride to <= 64 px


def test_a_pool_of_processes_draws_the_same_bytes():
    from deeprep_report.report import painter

    rng = np.random.default_rng(2)
    jobs = [figures.job(figures.depth_profile, LONG[:9], {"trained": list(rng.uniform(size=9))}, "mean")
            for _ in range(3)] + [figures.job(figures.similarity_matrix, LONG[:4], rng.uniform(size=(4, 4)), "CKA"),
                                  figures.job(figures.depth_profile, ["a"], {"x": ["not a number"]}, "y")]
    here, pooled = painter.draw_all(jobs, 1), painter.draw_all(jobs, 2)
    assert [r for r in here[:4]] == [r for r in pooled[:4]]
    assert isinstance(here[4], ValueError) and isinstance(pooled[4], ValueError)  # a failing figure is its own
    import os

    cores = len(os.sched_getaffinity(0))
    assert painter.workers_for(10, "auto") == 1 and painter.workers_for(10, 3) == min(3, cores)
    assert painter.workers_for(100, "auto") == min(cores, 8) and painter.workers_for(2, 64) <= 2  # never more
    # than the cores or the figures: the setting may come from someone else's run folder
