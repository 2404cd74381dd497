"""Nothing silent (issue 12, first part): the weights audit (a NaN weight the activations hide fails the audit),
weight change against a baseline, verdicts that match exit codes, a baseline that matches no pair."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import models as zoo
from conftest import read_summary as summary, run_cli as run, write_pipeline

keras = pytest.importorskip("keras")



@pytest.fixture(autouse=True)
def _tf(tf_quiet):
    keras.utils.set_random_seed(0)


def small_model() -> keras.Model:
    return keras.Sequential([
        keras.Input((6, 6, 2), name="pixels"), keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
        keras.layers.Flatten(name="flat"), keras.layers.Dense(60, activation="relu", name="wide"),
        keras.layers.Dense(3, activation="softmax", name="out"),
    ])


def project(tmp_path: Path, model: keras.Model, **extra) -> Path:
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", **zoo.data(40))
    return write_pipeline(tmp_path, {
        "run": {"name": "t", "preset": "minimal"}, "models": [{"name": "m", "path": "model.keras"}],
        "datasets": [{"name": "d", "path": "data.npz", "batch_size": 16}], **extra})


def test_weights_audit_equals_numpy_on_the_weights(capsys, tmp_path):
    model = small_model()
    pipeline = project(tmp_path, model)
    assert run(capsys, "run", str(pipeline), "--quiet")[0] == 0
    rows = {row["path"]: row for row in summary(tmp_path / "outputs/t")["models"][0]["weights"]}
    assert list(rows) == ["conv", "wide", "out"]
    for name, row in rows.items():
        arrays = [w.numpy().astype(np.float64) for w in model.get_layer(name).weights]
        values = np.concatenate([a.ravel() for a in arrays])
        kernel = arrays[0].reshape(-1, arrays[0].shape[-1])
        sigma = np.linalg.svd(kernel, compute_uv=False)
        assert row["params"] == values.size and row["nonfinite"] == 0
        assert row["norm"] == pytest.approx(np.linalg.norm(values), rel=1e-9)
        assert row["max_abs"] == pytest.approx(np.abs(values).max(), rel=1e-9)
        assert row["zero_fraction"] == pytest.approx((values == 0).mean())  # the zero-initialised biases
        assert row["top_singular_value"] == pytest.approx(sigma[0], rel=1e-6)
        assert row["stable_rank"] == pytest.approx((sigma ** 2).sum() / sigma[0] ** 2, rel=1e-6)
    html = (tmp_path / "outputs/t/report.html").read_text(encoding="utf-8")
    from deeprep_report.report.formatting import number

    assert 'stable rank</th>' in html and f'<td class="num">{number(rows["wide"]["stable_rank"])}</td>' in html


def test_a_nan_weight_behind_a_relu_fails_the_default_audit(capsys, tmp_path):
    model = small_model()
    kernel, bias = model.get_layer("wide").get_weights()
    kernel[0, 0] = np.nan
    model.get_layer("wide").set_weights([kernel, bias])
    pipeline = project(tmp_path, model)
    code, out, _ = run(capsys, "run", str(pipeline), "--quiet")
    assert code == 1 and out.startswith("FAIL")
    results = [r for r in summary(tmp_path / "outputs/t")["checks"]["results"] if r["status"] == "fail"]
    weights = [(r["rule"], r["layer"], r["detail"]) for r in results if "weights" in r["detail"]]
    assert weights == [("nan_inf", "wide", f"1 NaN/Inf weights of {kernel.size + bias.size:,}")]
    # whether the activations show the NaN depends on the kernels TensorFlow fuses; the weights fail regardless
    with_activations_masked = [r for r in results if "weights" not in r["detail"]]
    assert all(r["rule"] == "nan_inf" for r in with_activations_masked)


def test_weight_change_against_a_baseline_and_the_weights_rule(capsys, tmp_path):
    model = small_model()
    pipeline = project(tmp_path, model)
    assert run(capsys, "run", str(pipeline), "--quiet", "--set", "run.name=base")[0] == 0
    conv_kernel, conv_bias = model.get_layer("conv").get_weights()
    wide_kernel, wide_bias = model.get_layer("wide").get_weights()
    delta = np.random.default_rng(3).normal(0, 0.01, wide_kernel.shape).astype(np.float32)
    model.get_layer("wide").set_weights([wide_kernel + delta, wide_bias])
    conv_step = np.zeros_like(conv_kernel)
    conv_step[0, 0, 0, 0] = 0.5
    model.get_layer("conv").set_weights([conv_kernel + conv_step, conv_bias])
    model.save(tmp_path / "model.keras")
    code, out, _ = run(capsys, "run", str(pipeline), "--quiet", "--set", "run.name=now", "--baseline",
                       str(tmp_path / "outputs/base"), "--set", "checks=[{rule: weights, max_change: 0.05}]")
    changes = {layer["path"]: layer["relative_change"]
               for layer in summary(tmp_path / "outputs/now")["comparison"]["weights"][0]["layers"]}
    exact_conv = 0.5 / np.linalg.norm(np.concatenate([conv_kernel.ravel(), conv_bias]))
    assert changes["conv"] == pytest.approx(exact_conv, rel=1e-6)  # 76 values: stored whole
    exact_wide = np.linalg.norm(delta) / np.linalg.norm(np.concatenate([wide_kernel.ravel(), wide_bias]))
    assert changes["wide"] == pytest.approx(exact_wide, rel=0.15)  # 8,700 values: a count sketch (≈ 3 %)
    assert changes["out"] == 0.0
    failed = [r["layer"] for r in summary(tmp_path / "outputs/now")["checks"]["results"] if r["status"] == "fail"]
    assert exact_wide > 0.07  # clear of the threshold, so the sketch's error cannot flip the check
    assert (code, sorted(failed)) == (1, ["conv", "wide"])
    from deeprep_report.report.formatting import number

    html = (tmp_path / "outputs/now/report.html").read_text(encoding="utf-8")
    changes_section = html[html.index('<section id="changes">'):]
    assert f"Largest weight change: <code>conv</code> ({number(changes['conv'])} relative" in changes_section
    row = changes_section[changes_section.index("<code>wide</code>"):]
    assert row.split("</td>")[1].endswith(f'<td class="num">{number(changes["wide"])}')  # CKA, then weight change


def test_an_unevaluated_check_is_never_a_pass(capsys, tmp_path):
    pipeline = project(tmp_path, small_model(), checks=[{"rule": "drift", "min": 0.5}])
    code, out, _ = run(capsys, "run", str(pipeline), "--quiet")
    report = tmp_path / "outputs/t/report.html"
    assert (code, out) == (0, f"WARN 0 checks failed, 0 warnings, 1 not evaluated — {report}\n")
    code, out, _ = run(capsys, "run", str(pipeline), "--quiet", "--fail-on", "warn")
    assert (code, out.split()[0]) == (1, "WARN")
    assert summary(tmp_path / "outputs/t")["checks"]["verdict"]["status"] == "WARN"
    assert "**WARN 0 checks failed, 0 warnings, 1 not evaluated" in (tmp_path / "outputs/t/summary.md").read_text()


def test_a_baseline_that_matches_no_pair_is_an_error(capsys, tmp_path):
    pipeline = project(tmp_path, small_model())
    assert run(capsys, "run", str(pipeline), "--quiet", "--set", "run.name=base")[0] == 0
    other = write_pipeline(tmp_path, {
        "run": {"name": "other", "preset": "minimal"}, "models": [{"name": "m2", "path": "model.keras"}],
        "datasets": [{"name": "d2", "path": "data.npz"}]}, "other.yaml")
    for command in ("run", "validate"):
        code, out, err = run(capsys, command, str(other), "--baseline", str(tmp_path / "outputs/base"))
        assert (code, out) == (2, "")
        assert err.strip().endswith(f"compare.baseline: baseline {tmp_path / 'outputs/base'} has no pair of this "
                                    "run: it has m × d; this run has m2 × d2"), err


def test_a_baseline_or_run_folder_with_a_malformed_summary_is_one_line(capsys, tmp_path):
    pipeline = project(tmp_path, small_model())
    assert run(capsys, "run", str(pipeline), "--quiet", "--set", "run.name=base")[0] == 0
    base = tmp_path / "outputs/base"
    good = summary(base)
    path = base / "summary.json"
    broken_pair = {**good, "pairs": [{**good["pairs"][0], "model": 3}]}
    older = {**good, "schema_version": 5, "datasets": [{"name": "d"}]}
    for content, problem in [
        ([1, 2], f"{path}: expected a JSON object, got a JSON list"),
        (broken_pair, f"{path}: pairs[0].model: 3 is not of type 'string' (not a summary.json as deeprep writes it)"),
        (older, f"{path}: datasets[0].fingerprint: expected a string (not a summary.json as deeprep writes it)"),
    ]:
        path.write_text(json.dumps(content), encoding="utf-8")
        for args in (("validate", str(pipeline), "--baseline", str(base)), ("render", str(base))):
            code, _, err = run(capsys, *args)
            prefix = "baseline " if args[0] == "validate" else ""
            assert (code, err.count("\n")) == (2, 1) and err.endswith(f"{prefix}{problem}\n"), err
    path.write_text(json.dumps(good), encoding="utf-8")
    (base / "activations.h5").write_bytes(b"not a store")
    code, _, err = run(capsys, "validate", str(pipeline), "--baseline", str(base))
    assert code == 2 and err.count("\n") == 1 and f"baseline {base / 'activations.h5'}: cannot read the store" in err


def test_rescale_applies_to_arrays_and_unscaled_integers_are_said(capsys, tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, size=(40, 6, 6, 2)).astype(np.uint8)
    small_model().save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", x=pixels, y=np.arange(40) % 3)
    base = {"run": {"name": "t", "preset": "minimal"}, "models": [{"name": "m", "path": "model.keras"}]}
    scaled = write_pipeline(tmp_path, {**base, "datasets": [{"name": "d", "path": "data.npz", "rescale": "1/255"}]})
    assert run(capsys, "run", str(scaled), "--quiet")[0] == 0
    import h5py

    with h5py.File(tmp_path / "outputs/t/activations.h5") as store:
        stored = store["datasets/d/inputs/x"][()]
        rows = store["datasets/d/index"][()]
    np.testing.assert_allclose(stored, pixels[rows].astype(np.float32) / 255, rtol=1e-6)
    assert summary(tmp_path / "outputs/t")["pairs"][0]["unscaled_inputs"] == []
    plain = write_pipeline(tmp_path, {**base, "datasets": [{"name": "d", "path": "data.npz"}]}, "plain.yaml")
    code, _, err = run(capsys, "run", str(plain))
    assert code == 0 and ("array 'x' holds uint8 values fed unscaled into the float input 'pixels' of model m; set "
                          "datasets[0].rescale (e.g. 1/255)") in err
    assert summary(tmp_path / "outputs/t")["pairs"][0]["unscaled_inputs"] == [
        {"input": "pixels", "array": "x", "dtype": "uint8", "field": "datasets[0].rescale"}]
    html = (tmp_path / "outputs/t/report.html").read_text(encoding="utf-8")
    assert ("array &#39;x&#39; holds uint8 values fed unscaled into the float input &#39;pixels&#39;; set "
            "datasets[0].rescale (e.g. 1/255)") in html


@pytest.mark.parametrize("entry,message", [
    ({"name": "m@random", "path": "model.keras"}, "models[0].name: '@' is reserved for random-weights twins "
                                                  "(<model>@random), got 'm@random'"),
    ({"name": " ", "path": "model.keras"}, "models[0].name: expected a non-empty name"),
    ({"name": "a\tb", "path": "model.keras"}, "models[0].name: a name cannot hold control characters, got 'a\\tb'"),
    ({"application": "MobileNetV2", "options": {"when": "2020-01-01", "at": {"x": [1, None]}, "d": "ok"}}, None),
])
def test_names_and_options_are_refused_when_they_would_break_a_run(capsys, tmp_path, entry, message):
    from deeprep_report.config import validate
    from deeprep_report.errors import ConfigError

    raw = {"models": [entry], "datasets": [{"builtin": "digits"}]}
    if message is None:
        validate(raw, "pipeline.yaml")  # plain data passes
        raw["models"][0]["options"]["when"] = __import__("datetime").date(2020, 1, 1)
        message = "models[0].options: options.when: expected strings, numbers, booleans, lists or mappings, got date"
    with pytest.raises(ConfigError) as error:
        validate(raw, "pipeline.yaml")
    assert str(error.value).endswith(message), str(error.value)


def test_a_yaml_alias_bomb_is_refused_at_once(capsys, tmp_path):
    import time

    lines = ["models:", "  - application: MobileNetV2", "    options:", '      a0: &a0 ["x", "x", "x", "x", "x", "x"]']
    lines += [f"      a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 12)]
    lines += ["datasets: [{builtin: digits}]"]
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    started = time.perf_counter()
    code, out, err = run(capsys, "validate", str(tmp_path / "bomb.yaml"))
    assert time.perf_counter() - started < 5
    assert (code, out) == (2, "") and err.strip().endswith(
        "the file expands to more than 100,000 values (YAML aliases repeated inside each other?); a pipeline is far "
        "smaller"), err


def test_usage_errors_and_bad_folders_are_one_line_before_any_work(capsys, tmp_path):
    code, out, err = run(capsys, "run", "--fail-on", "sometimes")
    assert (code, out) == (2, "") and err.count("\n") == 1 and err.startswith("error: argument --fail-on: invalid "
                                                                                 "choice") and "--help" in err
    pipeline = project(tmp_path, small_model())
    (tmp_path / "afile").write_text("x")
    code, out, err = run(capsys, "run", str(pipeline), "--out", str(tmp_path / "afile" / "run"))
    assert (code, out, err) == (2, "", f"error: --out: {tmp_path / 'afile'} is a file, not a folder; choose another "
                                       "path\n")
    code, out, err = run(capsys, "run", str(pipeline), "--set", "report.template_dir=nowhere")
    assert (code, out) == (2, "") and err.count("\n") == 1 and err.endswith(
        "report.template_dir: no such folder 'nowhere'\n")
    assert not (tmp_path / "outputs").exists()  # nothing was started


def test_application_models_are_seeded_so_a_rerun_is_the_same_model(tmp_path):
    from deeprep_report.config import load_config
    from deeprep_report.sources.models import load_model

    pipeline = write_pipeline(tmp_path, {"run": {"seed": 4}, "models": [
        {"application": "MobileNetV3Small", "options": {"input_shape": [32, 32, 3], "include_top": False}}],
        "datasets": [{"builtin": "digits"}]})
    config = load_config(pipeline)
    first, second = load_model(config, 0), load_model(config, 0)
    for a, b in zip(first.model.weights, second.model.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    other = load_model(load_config(pipeline, ["run.seed=5"]), 0)
    assert any(not np.array_equal(a.numpy(), b.numpy()) for a, b in zip(first.model.weights, other.model.weights))


def test_dead_means_constant_except_after_relu_and_relu6():
    from deeprep_report.stats import Moments, unit_stats

    values = np.array([[-1.0, -0.5, 0.0], [-2.0, -0.5, 0.0], [-0.5, -0.5, 0.0]])  # unit 0 varies below 0
    moments = Moments.of(values)
    for activation in ("leaky_relu", "prelu", "elu", "gelu", "silu"):
        assert unit_stats(moments, activation, False)["dead"].tolist() == [False, True, True], activation
    for activation in ("relu", "relu6"):
        assert unit_stats(moments, activation, False)["dead"].tolist() == [True, True, True], activation


def test_a_concatenation_of_an_lstm_state_inherits_no_activation():
    from deeprep_report.extract.graph import LayerGraph

    inputs = keras.Input((5, 3))
    _, h, c = keras.layers.LSTM(4, return_state=True, name="lstm")(inputs)
    merged = keras.layers.Concatenate(name="state")([h, c])
    graph = LayerGraph(keras.Model(inputs, merged), "m")
    found = {info.path: info.activation for info in graph.layers}
    assert found["state"] is None  # c is not tanh-bounded


def test_custom_objects_import_the_module_that_registers_a_custom_layer(capsys, tmp_path):
    (tmp_path / "mylayers.py").write_text('''import keras


@keras.saving.register_keras_serializable(package="mylayers")
class Scale(keras.layers.Layer):
    def call(self, x):
        return 2.0 * x
''', encoding="utf-8")
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        import mylayers

        inputs = keras.Input((6, 6, 2), name="pixels")
        outputs = keras.layers.Dense(3, name="out")(keras.layers.Flatten()(mylayers.Scale(name="scale")(inputs)))
        keras.Model(inputs, outputs).save(tmp_path / "model.keras")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("mylayers", None)
        keras.saving.get_custom_objects().pop("mylayers>Scale", None)
    np.savez(tmp_path / "data.npz", **zoo.data(20))
    base = {"run": {"name": "t", "preset": "minimal"}, "datasets": [{"name": "d", "path": "data.npz"}]}
    without = write_pipeline(tmp_path, {**base, "models": [{"name": "m", "path": "model.keras"}]})
    code, _, err = run(capsys, "run", str(without))
    assert code == 2 and err.count("\n") == 1 and err.rstrip().endswith(
        "if it holds custom layers, name the module that registers them in models[0].custom_objects"), err
    with_module = write_pipeline(tmp_path, {**base, "models": [{"name": "m", "path": "model.keras",
                                                               "custom_objects": ["mylayers"]}]}, "with.yaml")
    assert run(capsys, "run", str(with_module), "--quiet")[0] == 0
    missing = write_pipeline(tmp_path, {**base, "models": [{"name": "m", "path": "model.keras",
                                                           "custom_objects": ["nomodule"]}]}, "missing.yaml")
    code, _, err = run(capsys, "run", str(missing))
    assert code == 2 and "models[0].custom_objects[0]: cannot import 'nomodule': ModuleNotFoundError" in err


ODD = ["<img src=x onerror=alert(1)>", "it's \"quoted\" ç", "back\\slash", " leading space"]


def test_any_layer_name_runs_and_stays_escaped(capsys, tmp_path):
    inputs = keras.Input((6, 6, 2), name="pixels")
    h = keras.layers.Flatten(name=ODD[3])(inputs)
    for name in ODD[:3]:
        h = keras.layers.Dense(4, activation="relu", name=name)(h)
    model = keras.Model(inputs, h)
    pipeline = project(tmp_path, model, store={"full_samples": "all"})
    assert run(capsys, "run", str(pipeline), "--quiet")[0] == 0
    from deeprep_report.store import StoreReader

    with StoreReader(tmp_path / "outputs/t/activations.h5") as store:
        rows = store.file["datasets/d/index"][()]
        x = zoo.data(40)["x"][rows]
        assert store.layers("m", "d") == [ODD[3], *ODD[:3]]
        for name in ODD[:3]:
            expected = np.asarray(keras.Model(model.inputs, model.get_layer(name).output)(x))
            np.testing.assert_allclose(store.layer_group("m", "d", name)["pooled"][()], expected, rtol=1e-5,
                                       atol=1e-6)
    html = (tmp_path / "outputs/t/report.html").read_text(encoding="utf-8")
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_nested_blocks_that_reuse_a_layer_name_run(capsys, tmp_path):
    def block(index: int) -> keras.Model:
        return keras.Sequential([keras.Input((72,)), keras.layers.Dense(5, activation="relu", name="dense"),
                                 keras.layers.Dropout(0.2, name="drop")], name=f"block{index}")

    inputs = keras.Input((6, 6, 2), name="pixels")
    first, second = block(1), block(2)
    flat = keras.layers.Flatten(name="flat")(inputs)
    model = keras.Model(inputs, second(keras.layers.Dense(72, name="wide")(first(keras.layers.Dense(72, name="in")(flat)))))
    pipeline = project(tmp_path, model)
    assert run(capsys, "run", str(pipeline), "--quiet")[0] == 0
    from deeprep_report.store import StoreReader

    with StoreReader(tmp_path / "outputs/t/activations.h5") as store:
        assert store.layers("m", "d") == ["flat", "in", "block1/dense", "block1/drop", "wide", "block2/dense",
                                          "block2/drop"]
        x = zoo.data(40)["x"][store.file["datasets/d/index"][()]]
        inner = first.get_layer("dense")
        expected = np.asarray(inner(model.get_layer("in")(model.get_layer("flat")(x))))
        np.testing.assert_allclose(store.layer_group("m", "d", "block1/dense")["pooled"][()], expected, rtol=1e-5,
                                   atol=1e-6)


def test_a_damaged_image_is_one_line_before_any_work(capsys, tmp_path):
    from PIL import Image

    for label in ("a", "b"):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((6, 6, 3), 40 * i, dtype=np.uint8)).save(tmp_path / "images" / label / f"{i}.png")
    damaged = tmp_path / "images" / "b" / "2.png"
    damaged.write_bytes(damaged.read_bytes()[:40])
    keras.Sequential([keras.Input((6, 6, 3)), keras.layers.Flatten(), keras.layers.Dense(2)]).save(
        tmp_path / "model.keras")
    pipeline = write_pipeline(tmp_path, {"models": [{"name": "m", "path": "model.keras"}],
                                         "datasets": [{"name": "pets", "path": "images"}]})
    code, out, err = run(capsys, "run", str(pipeline))
    assert (code, out, err.count("\n")) == (2, "", 1) and f"datasets[0].path: {damaged}: cannot read image" in err
    assert not (tmp_path / "outputs").exists()
