"""The render stage: a self-contained, escaped, reproducible report.html from the stored run alone."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import h5py
import numpy as np

from deeprep_report.report import figures
from deeprep_report.cli import main
from deeprep_report.report.formatting import number, percent
from deeprep_report.report.sections.layer import _heatmap_rows, _spread_by_class, _top_rows

from conftest import write_pipeline

HOSTILE = "<img src=x onerror=alert(1)>"


class Page(HTMLParser):
    """What a test needs from a report: every tag with its attributes, ids, links, text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str]]:
        return [attrs for name, attrs in self.tags if name == tag]

    @property
    def ids(self) -> set[str]:
        return {attrs["id"] for _, attrs in self.tags if "id" in attrs}


def copy_run(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    (target / "report.html").unlink()
    return target


def render_in_subprocess(run_dir: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``deeprep render`` in a fresh process, run from the run folder so that the package (and its
    templates) come from the installed distribution, not from this source tree."""
    code = ("import sys\nfrom deeprep_report.cli import main\ncode = main(['render', sys.argv[1], '--quiet'])\n"
            "assert 'tensorflow' not in sys.modules, 'render imported tensorflow'\n"
            "assert 'keras' not in sys.modules, 'render imported keras'\nsys.exit(code)\n")
    environment = {**os.environ, **(env or {})}
    environment.pop("PYTHONPATH", None)
    return subprocess.run([sys.executable, "-c", code, str(run_dir)], capture_output=True, text=True,
                          env=environment, cwd=run_dir, timeout=300)


def test_render_uses_the_run_folder_alone_and_is_reproducible(demo_run, tmp_path):
    """In a fresh process, without TensorFlow; two renders differ only in the "rendered at" line."""
    run_dir = copy_run(demo_run[0], tmp_path / "copy")
    result = render_in_subprocess(run_dir, {"SOURCE_DATE_EPOCH": "1700000000"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"done: {run_dir / 'report.html'}"
    first = (run_dir / "report.html").read_text(encoding="utf-8").splitlines()
    assert render_in_subprocess(run_dir, {"SOURCE_DATE_EPOCH": "1800000000"}).returncode == 0
    second = (run_dir / "report.html").read_text(encoding="utf-8").splitlines()
    differing = [(a, b) for a, b in zip(first, second) if a != b]
    assert len(first) == len(second) and len(differing) == 1
    assert "Rendered at 2023-11-14T22:13:20Z" in differing[0][0] and "Rendered at 2027-01-15T08:00:00Z" in differing[0][1]


def test_report_is_self_contained(demo_run):
    html = (demo_run[0] / "report.html").read_text(encoding="utf-8")
    page = Page(html)
    sources = [value for _, attrs in page.tags for key, value in attrs.items() if key in ("src", "href", "srcset")]
    sources += re.findall(r"url\(\s*['\"]?([^'\")]+)", html)
    for source in sources:
        assert not re.match(r"^\s*(https?:)?//", source, re.IGNORECASE), source
        assert source.startswith(("data:image/png;base64,", "#")), source
    assert not page.all("script") and not page.all("link") and not page.all("iframe")
    assert "@import" not in html and "@font-face" not in html
    images = page.all("img")
    assert len(images) >= 25 and all(img["alt"].strip() for img in images)


def test_contents_sections_headings_and_links(demo_run):
    page = Page((demo_run[0] / "report.html").read_text(encoding="utf-8"))
    ids = page.ids
    links = [a["href"][1:] for a in page.all("a") if a.get("href", "").startswith("#")]
    assert links and set(links) <= ids
    for section in ("checks", "overview", "models", "datasets", "findings", "pair-0", "pair-0-depth", "provenance"):
        assert section in ids
    layer_sections = [i for i in ids if re.fullmatch(r"pair-0-layer-\d+", i)]
    assert len(layer_sections) == 8
    levels = [int(tag[1]) for tag, _ in page.tags if re.fullmatch(r"h[1-6]", tag)]
    assert levels[0] == 1 and all(b <= a + 1 for a, b in zip(levels, levels[1:]))  # never skips a level
    text = " ".join(page.text)
    assert re.search(r"All \d+ figures computed", text)
    summary = json.loads((demo_run[0] / "summary.json").read_text())
    dense = next(layer for layer in summary["pairs"][0]["layers"] if layer["path"] == "dense_1")
    assert f"{dense['stats']['dead_units']} of 64 units dead" in text  # findings come from the data
    assert "Rendered at" in text and "<details>" in (demo_run[0] / "report.html").read_text()


def test_findings_match_the_summary(demo_run):
    summary = json.loads((demo_run[0] / "summary.json").read_text())
    html = (demo_run[0] / "report.html").read_text()
    html = html[html.index('<section id="findings">'):]
    html = html[: html.index("</section>")]
    for layer in summary["pairs"][0]["layers"]:
        dead = layer["stats"]["dead_units"]
        phrase = f"{dead} of {layer['units']} units dead"
        assert (phrase in html) == (dead > 0), layer["path"]


def test_the_report_defines_every_rule_the_run_used(demo_run):
    """A reader with only the HTML sees what each rule means, why it matters and how it was configured."""
    import html as html_module

    from deeprep_report.config.rules import RULE_MODELS

    summary = json.loads((demo_run[0] / "summary.json").read_text())
    html = (demo_run[0] / "report.html").read_text()
    section = html[html.index('<section id="checks">'):]
    section = section[: section.index("</section>")]
    rules = re.findall(r'<details class="rule"><summary><code>([a-z_]+)</code>', section)
    assert rules == [definition["rule"] for definition in summary["checks"]["definitions"]]
    for definition in summary["checks"]["definitions"]:
        model = RULE_MODELS[definition["rule"]]
        assert html_module.escape(model.why) in section
        assert " ".join(model.__doc__.replace("``", "").split()) in html_module.unescape(section)
    assert "As configured: layers all · datasets all · severity warn · max 0.5" in section  # dead_units
    assert "docs/checks.md" not in section


def test_names_are_escaped_everywhere(tmp_path, tf_quiet):
    """Hostile model, dataset and layer names never reach the HTML unescaped.

    Model and dataset names come from the config and go through the whole run.
    TensorFlow refuses such a layer name inside a graph, so the layer is renamed
    in the stored run afterwards: the render stage must treat it as data too.
    """

    import keras

    from deeprep_report.store import StoreReader, layer_key, pair_key

    x = keras.Input((6, 6, 2), name="pixels")
    conv = keras.layers.Conv2D(3, 3, activation="relu", name="conv")(x)
    keras.Model(x, keras.layers.Dense(2, name="out")(keras.layers.Flatten()(conv))).save(tmp_path / "model.keras")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=rng.random((12, 6, 6, 2)).astype(np.float32), y=rng.integers(0, 2, 12))
    model, dataset = HOSTILE + "/m", "d " + HOSTILE
    pipeline = write_pipeline(tmp_path, {
        "run": {"name": "t"}, "models": [{"name": model, "path": "model.keras"}],
        "datasets": [{"name": dataset, "path": "data.npz"}],
    })
    assert main(["run", str(pipeline), "--quiet"]) == 0
    run_dir = tmp_path / "outputs/t"
    with h5py.File(run_dir / "activations.h5", "r+") as store:
        assert list(store["models"]) == [model.replace("/", "%2F")]  # one HDF5 name, '/' escaped
        layers = store[pair_key(model, dataset)]["layers"]
        layers.move(layer_key("conv"), layer_key(HOSTILE))
        store[pair_key(model, dataset)].attrs["layers"] = json.dumps([HOSTILE, "flatten", "out"])
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["pairs"][0]["layers"][0]["path"] = HOSTILE
    summary["models"][0]["layers"][0]["path"] = HOSTILE
    (run_dir / "summary.json").write_text(json.dumps(summary))
    with StoreReader(run_dir / "activations.h5") as store:
        assert store.layers(model, dataset)[0] == HOSTILE
    assert main(["render", str(run_dir), "--quiet"]) == 0
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert HOSTILE not in html
    assert html.count("&lt;img src=x onerror=alert(1)&gt;") >= 5
    assert all("onerror" not in attrs for _, attrs in Page(html).tags)


def test_a_layer_name_tensorflow_cannot_take_runs_and_is_escaped(capsys, tmp_path, tf_quiet):
    import keras

    x = keras.Input((6, 6, 2), name="pixels")
    keras.Model(x, keras.layers.Flatten(name=HOSTILE)(x)).save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", x=np.zeros((3, 6, 6, 2), np.float32))
    pipeline = write_pipeline(tmp_path, {"models": [{"name": "m", "path": "model.keras"}],
                                         "datasets": [{"name": "d", "path": "data.npz"}]})
    assert main(["run", str(pipeline), "--quiet"]) == 0
    html = (tmp_path / "outputs/deeprep-run/report.html").read_text(encoding="utf-8")
    assert HOSTILE not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert all("onerror" not in attrs for _, attrs in Page(html).tags)


def test_template_dir_overrides_and_settings(demo_run, tmp_path):
    run_dir = copy_run(demo_run[0], tmp_path / "copy")
    custom = tmp_path / "my_templates"
    custom.mkdir()
    (custom / "macros.html.j2").write_text(
        "{% macro figure(shown) %}<p class=custom>{{ shown.caption }}</p>{% endmacro %}"
        "{% macro table(rows, caption) %}<p>{{ caption }}</p>{% endmacro %}", encoding="utf-8")
    code = main(["render", str(run_dir), "--quiet", "--set", f"report.template_dir={custom}",
                 "--set", "report.layers=[conv*, dense_2]"])
    assert code == 0
    page = Page((run_dir / "report.html").read_text(encoding="utf-8"))
    # every figure came through the replaced macro; only the galleries' maps and colour bars are their own markup
    assert all(", channel " in img["alt"] or img["alt"].startswith("colour scale") for img in page.all("img"))
    assert len([p for p in page.all("p") if p.get("class") == "custom"]) > 5
    assert len([i for i in page.ids if i.startswith("pair-0-layer-")]) == 3  # conv1, conv2, dense_2
    assert "5 layers captured but not shown" in " ".join(page.text)


def test_a_replaced_template_that_breaks_is_one_line(demo_run, tmp_path, capsys):
    run_dir = copy_run(demo_run[0], tmp_path / "copy")
    custom = tmp_path / "broken"
    custom.mkdir()
    (custom / "macros.html.j2").write_text("{% macro table(rows, caption) %}{% endmacro %}", encoding="utf-8")
    assert main(["render", str(run_dir), "--quiet", "--set", f"report.template_dir={custom}"]) == 2
    assert capsys.readouterr().err == (
        f"error: report.template_dir {custom}: UndefinedError: the template 'macros.html.j2' (imported on line 2 in "
        "'sections/analysis.html.j2') does not export the requested name 'figure' (a replaced template must define "
        "what the shipped one does: docs/report.md)\n")
    assert not (run_dir / "report.html").exists()


def test_a_figure_that_fails_is_reported_not_fatal(demo_run, tmp_path, monkeypatch):
    run_dir = copy_run(demo_run[0], tmp_path / "copy")

    def broken(*args, **kwargs):
        raise RuntimeError("no ink")

    monkeypatch.setattr(figures, "unit_panels", broken)
    assert main(["render", str(run_dir), "--quiet"]) == 0
    text = " ".join(Page((run_dir / "report.html").read_text()).text)
    assert re.search(r"8 of \d+ figures could not be drawn", text) and "RuntimeError: no ink" in text


def test_render_errors_are_one_line(capsys, tmp_path):
    assert main(["render", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nope'}: no such run folder\n"
    (tmp_path / "half").mkdir()
    assert main(["render", str(tmp_path / "half")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'half'}: no summary.json, so this is not a finished run\n"


def test_top_rows_equal_a_full_sort_whatever_the_chunking(tmp_path, monkeypatch):
    import deeprep_report.report.sections.layer as content

    values = np.random.default_rng(3).normal(size=(1000, 5)).astype(np.float32)
    values[17, 2] = np.nan
    with h5py.File(tmp_path / "p.h5", "w") as handle:
        handle["pooled"] = values
        for chunk in (7, 100, 8192):
            monkeypatch.setattr(content, "_ROWS_PER_READ", chunk)
            rows, top = _top_rows(handle["pooled"], np.array([4, 2, 0]), 6)
            for i, unit in enumerate([4, 2, 0]):
                column = np.where(np.isnan(values[:, unit]), -np.inf, values[:, unit])
                np.testing.assert_array_equal(rows[i], np.argsort(-column, kind="stable")[:6])
                np.testing.assert_allclose(top[i], column[rows[i]])


def test_top_rows_break_ties_by_the_second_key(tmp_path, monkeypatch):
    """Exemplars of a map layer: equal peaks (a saturated patch) are ordered by the mean, then by row."""
    import deeprep_report.report.sections.layer as content

    rng = np.random.default_rng(4)
    peak = np.round(rng.uniform(size=(500, 3)), 1).astype(np.float32)  # many ties
    mean = rng.normal(size=(500, 3)).astype(np.float32)
    mean[10:20] = 0.5  # ties in both keys: the row decides
    with h5py.File(tmp_path / "p.h5", "w") as handle:
        handle["peak"], handle["pooled"] = peak, mean
        for chunk in (9, 8192):
            monkeypatch.setattr(content, "_ROWS_PER_READ", chunk)
            rows, top = _top_rows(handle["peak"], np.array([2, 0]), 12, ties=handle["pooled"])
            for i, unit in enumerate([2, 0]):
                expected = sorted(range(500), key=lambda r: (-peak[r, unit], -mean[r, unit], r))[:12]
                assert rows[i].tolist() == expected
                np.testing.assert_array_equal(top[i], peak[expected, unit])


def test_selection_rules():
    labels = np.array([3, 3, 1, 0, 1, 2, 0])
    assert _spread_by_class(labels, 7, 3).tolist() == [3, 2, 5]  # first of classes 0, 1, 2
    assert _spread_by_class(labels, 7, 6).tolist() == [3, 2, 5, 0, 1, 4]
    assert _spread_by_class(None, 7, 4).tolist() == [0, 1, 2, 3]
    rows, groups = _heatmap_rows(labels, 7, 4, {"class_names": ["a", "b", "c", "d"]})
    assert rows.tolist() == [3, 2, 5, 0] and groups == [("a", 1), ("b", 1), ("c", 1), ("d", 1)]


def test_number_formatting():
    assert [number(v) for v in (None, float("nan"), 0.0, 0.1303, 2.1997, 28.336, 1.5e-5, 123456.0)] == [
        "n/a", "n/a", "0", "0.13", "2.2", "28.3", "1.50e-05", "1.23e+05"]
    assert [percent(v) for v in (0.0, 1.0, 0.468, 0.000123, None)] == ["0 %", "100 %", "46.8 %", "0.0123 %", "n/a"]


def test_png_figures_carry_no_software_chunk():
    import base64

    uri = figures.depth_profile(["a", "b"], {"trained": [0.1, 0.2]}, "mean")
    data = base64.b64decode(uri.split(",", 1)[1])
    assert data.startswith(b"\x89PNG") and b"Software" not in data and b"matplotlib" not in data
    assert uri == figures.depth_profile(["a", "b"], {"trained": [0.1, 0.2]}, "mean")


def test_report_without_stored_inputs_or_maps(tmp_path, tf_quiet):
    """With nothing but pooled activations stored, the report still renders every section it can."""
    import models as zoo

    zoo.sequential().save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", **zoo.data(20))
    pipeline = write_pipeline(tmp_path, {
        "run": {"name": "t"}, "models": [{"name": "m", "path": "model.keras"}],
        "datasets": [{"name": "d", "path": "data.npz"}], "store": {"inputs": False, "full_samples": 0},
    })
    assert main(["run", str(pipeline), "--quiet"]) == 0
    page = Page((tmp_path / "outputs/t/report.html").read_text(encoding="utf-8"))
    text = " ".join(page.text)
    assert "Feature maps" not in text and "Top exemplars" not in text
    assert "Activations by class" in text  # dense layers need only the pooled activations
    assert re.search(r"All \d+ figures computed", text)


def test_a_model_over_max_layers_shows_a_chosen_set_and_its_flagged_layers_in_brief(demo_run, tmp_path):
    run_dir = copy_run(demo_run[0], tmp_path / "copy")
    assert main(["render", str(run_dir), "--quiet", "--set", "report.max_layers=4"]) == 0
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    page = Page(html)
    shown = re.findall(r'<section id="pair-0-layer-\d+" class="layer">\s*<h3>(\S+) ', html)
    # in full: conv1 (the first with weights), pool2 (a stage end: the four stage ends thinned to the room left)
    # and dense_2 (the last); in brief, statistics and unit charts only: the layers whose findings (dead units)
    # are not carried into another's, conv2 and dense_1
    assert shown == ["conv1", "conv2", "pool2", "dense_1", "dense_2"]
    briefs = html.split('class="layer">')[1:]
    brief_names = [name for name, section in zip(shown, briefs) if "In brief (flagged" in section]
    assert brief_names == ["conv2", "dense_1"]
    assert "3 layers captured but not shown" in " ".join(page.text)
    for name, section in zip(shown, briefs):
        if name in brief_names:
            assert "Feature maps" not in section and "Top exemplars" not in section
    assert "the sections below are its first and last layers, block outputs and stage ends" in " ".join(page.text)


def test_a_layer_that_passes_its_input_through_links_to_it(demo_run):
    """Dropout at inference is its input: its section would repeat Flatten's maps and exemplars."""
    html = (demo_run[0] / "report.html").read_text(encoding="utf-8")
    sections = dict(re.findall(r'<section id="pair-0-layer-\d+" class="layer">\s*<h3>(\S+) (.*?)</section>', html,
                               re.S))
    assert 'At inference a Dropout passes its input through: the same values as <a href="#pair-0-layer-4">flatten' \
        in sections["dropout"]
    assert "Activations by class" not in sections["dropout"] and "Top exemplars" not in sections["dropout"]
    assert "Activations by class" in sections["flatten"] and 'id="pair-0-layer-4"' in html
