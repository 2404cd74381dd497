"""Data the user has (issue 14, part 5): class names for integer labels, per-channel normalisation, a
keras.applications preprocess_input inside the forward pass; each checked against an independent computation,
each refusal by its one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import read_summary as summary, run_cli as run, write_pipeline

keras = pytest.importorskip("keras")

from deeprep_report.config import load_config, validate  # noqa: E402
from deeprep_report.errors import ConfigError  # noqa: E402
from deeprep_report.sources.loaders import open_dataset  # noqa: E402
from deeprep_report.store import StoreReader  # noqa: E402


@pytest.fixture(autouse=True)
def _tf(tf_quiet):
    keras.utils.set_random_seed(0)


def opened(tmp_path: Path, dataset: dict):
    """``datasets[0]`` of a pipeline in ``tmp_path`` opened as the plan opens it."""
    path = write_pipeline(tmp_path, {"models": [{"builtin": "digits_cnn"}], "datasets": [dataset]})
    return open_dataset(load_config(path), 0)


def refusal(tmp_path: Path, dataset: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        opened(tmp_path, dataset)
    return str(caught.value)


def conv_model(channels: int = 3, name: str = "pixels") -> keras.Model:
    x = keras.Input((6, 6, channels), name=name)
    h = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(x)
    return keras.Model(x, keras.layers.Dense(3, name="out")(keras.layers.Flatten(name="flat")(h)))


# -- class_names -------------------------------------------------------------------------------------------------

def test_class_names_reach_the_summary_and_the_store(capsys, tmp_path):
    conv_model(2).save(tmp_path / "model.keras")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=rng.normal(size=(30, 6, 6, 2)).astype(np.float32), y=np.arange(30) % 3)
    pipeline = write_pipeline(tmp_path, {
        "run": {"name": "t", "preset": "minimal"}, "models": [{"name": "m", "path": "model.keras"}],
        "datasets": [{"name": "d", "path": "data.npz", "class_names": ["cat", "dog", "bird"]}]})
    assert run(capsys, "run", str(pipeline), "--quiet")[0] == 0
    dataset = summary(tmp_path / "outputs/t")["datasets"][0]
    assert dataset["class_names"] == ["cat", "dog", "bird"]
    assert dataset["class_counts"] == {"cat": 10, "dog": 10, "bird": 10}


def test_class_names_from_a_file_next_to_the_pipeline(tmp_path):
    np.savez(tmp_path / "data.npz", x=np.zeros((4, 3), np.float32), y=np.array([0, 2, 1, 2]))
    (tmp_path / "names.txt").write_text("zero\n  one \ntwo\n\n", encoding="utf-8")
    assert opened(tmp_path, {"path": "data.npz", "class_names": "names.txt"}).class_names == ["zero", "one", "two"]
    more = opened(tmp_path, {"path": "data.npz", "class_names": list("abcd")})  # 'd' has no samples (said in the log)
    assert more.class_names == list("abcd")
    import h5py

    with h5py.File(tmp_path / "data.h5", "w") as handle:
        handle["x"], handle["y"] = np.zeros((3, 2), np.float32), np.array([1, 0, 1])
    assert opened(tmp_path, {"path": "data.h5", "class_names": ["no", "yes"]}).class_names == ["no", "yes"]


@pytest.mark.parametrize("dataset,message", [
    ({"path": "plain.npz", "class_names": ["a"]},
     "datasets[0].class_names: dataset 'plain' has no labels to name (give it labels, or remove class_names)"),
    ({"path": "words.npz", "class_names": ["a", "b"]},
     "datasets[0].class_names: the classes of dataset 'words' are named by string labels; remove class_names"),
    ({"path": "images", "class_names": ["a", "b"]},
     "datasets[0].class_names: the classes of dataset 'images' are named by its subfolders; remove class_names"),
    ({"path": "data.npz", "class_names": ["a", "b"]},
     "datasets[0].class_names: 2 names for labels 0 to 2: 3 are needed"),
    ({"path": "data.npz", "class_names": ["a", "b", "a"]},
     "datasets[0].class_names[2]: 'a' is already the name of class 0; names must be unique"),
    ({"path": "data.npz", "class_names": ["a", " ", "c"]},
     "datasets[0].class_names[1]: empty name; every class needs one"),
    ({"path": "data.npz", "class_names": []}, "datasets[0].class_names: expected at least one name"),
    ({"path": "data.npz", "class_names": "dupes.txt"},
     "datasets[0].class_names: 'dupes.txt' line 3: 'a' is already the name of class 0; names must be unique"),
    ({"path": "data.npz", "class_names": "gap.txt"},
     "datasets[0].class_names: 'gap.txt' line 2: empty name; every class needs one"),
    ({"path": "data.npz", "class_names": "missing.txt"}, "datasets[0].class_names: no such file 'missing.txt'"),
])
def test_class_names_refusals(tmp_path, dataset, message):
    from PIL import Image

    np.savez(tmp_path / "data.npz", x=np.zeros((4, 3), np.float32), y=np.array([0, 2, 1, 2]))
    np.savez(tmp_path / "plain.npz", x=np.zeros((4, 3), np.float32))
    np.savez(tmp_path / "words.npz", x=np.zeros((2, 3), np.float32), y=np.array(["cat", "dog"]))
    for label in ("cat", "dog"):
        (tmp_path / "images" / label).mkdir(parents=True)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "images" / label / "0.png")
    (tmp_path / "dupes.txt").write_text("a\nb\na\n", encoding="utf-8")
    (tmp_path / "gap.txt").write_text("a\n\nc\n", encoding="utf-8")
    assert refusal(tmp_path, dataset).endswith(f"pipeline.yaml: {message}")


def test_class_names_of_built_in_data_are_refused_by_the_config():
    with pytest.raises(ConfigError) as caught:
        validate({"models": [{"builtin": "digits_cnn"}], "datasets": [{"builtin": "digits", "class_names": ["a"]}]},
                 "pipeline.yaml")
    assert str(caught.value) == ("pipeline.yaml: datasets[0]: class_names applies to integer labels of files "
                                 "(.npz, .h5, .txt, .jsonl, .csv); built-in data names its classes")


# -- normalize ---------------------------------------------------------------------------------------------------

NORMALIZE = {"mean": [0.4, 0.6], "std": [0.2, 0.3]}


def normalised(pixels: np.ndarray, rescale: float) -> np.ndarray:
    """The documented formula, computed here: (x * rescale - mean) / std in float32."""
    mean, std = np.float32(NORMALIZE["mean"]), np.float32(NORMALIZE["std"])
    return (pixels.astype(np.float32) * np.float32(rescale) - mean) / std


def pixel_project(tmp_path: Path, n: int, channels: int, model_extra: dict, data_extra: dict, seed: int,
                  classes: int) -> tuple[np.ndarray, keras.Model, Path]:
    """uint8 6x6 pixels, a saved conv model and a minimal pipeline capturing its conv and out layers."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(n, 6, 6, channels)).astype(np.uint8)
    model = conv_model(channels)
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", x=pixels, y=np.arange(n) % classes)
    pipeline = write_pipeline(tmp_path, {
        "run": {"name": "t", "preset": "minimal"},
        "models": [{"name": "m", "path": "model.keras", "layers": ["conv", "out"], **model_extra}],
        "datasets": [{"name": "d", "path": "data.npz", **data_extra}]})
    return pixels, model, pipeline


def test_normalize_feeds_the_model_the_normalised_array(capsys, tmp_path):
    pixels, model, pipeline = pixel_project(tmp_path, 24, 2, {}, {"rescale": "1/255", "normalize": NORMALIZE,
                                                                  "batch_size": 10}, seed=0, classes=3)
    code, _, err = run(capsys, "run", str(pipeline))
    assert code == 0 and "fed unscaled" not in err  # uint8 on disk, floats into the model: no warning
    assert summary(tmp_path / "outputs/t")["pairs"][0]["unscaled_inputs"] == []
    with StoreReader(tmp_path / "outputs/t/activations.h5") as store:
        rows = store.file["datasets/d/index"][()]
        expected = normalised(pixels[rows], 1 / 255)
        np.testing.assert_allclose(store.file["datasets/d/inputs/x"][()], expected, rtol=1e-6, atol=1e-6)
        maps = store.layer_group("m", "d", "conv")["maps"][()]
        out = store.layer_group("m", "d", "out")["pooled"][()]
    conv = keras.Model(model.input, model.get_layer("conv").output)
    np.testing.assert_allclose(maps, np.asarray(conv(expected)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out, np.asarray(model(expected)), rtol=1e-5, atol=1e-5)
    changed = write_pipeline(tmp_path, {**yaml_of(pipeline), "run": {"name": "u", "preset": "minimal"},
                                        "datasets": [{"name": "d", "path": "data.npz", "rescale": "1/255",
                                                      "normalize": {"mean": [0.5], "std": [0.25]}}]}, "u.yaml")
    assert run(capsys, "run", str(changed), "--quiet")[0] == 0
    assert summary(tmp_path / "outputs/u")["pairs"][0]["reused_from"] is None  # other inputs: extracted again


def yaml_of(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_normalize_of_image_folders_and_hdf5_is_the_same_transform(tmp_path):
    from PIL import Image

    import h5py

    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (2, 5, 5, 3), dtype=np.uint8)
    (tmp_path / "images" / "a").mkdir(parents=True)
    for i, image in enumerate(pixels):
        Image.fromarray(image).save(tmp_path / "images" / "a" / f"{i}.png")
    norm = {"mean": [10, 20, 30], "std": [2]}
    images = opened(tmp_path, {"path": "images", "normalize": norm})
    expected = (pixels.astype(np.float32) - np.float32([10, 20, 30])) / np.float32(2)
    np.testing.assert_allclose(images.read(np.array([0, 1]), ["x"])["x"], expected, rtol=1e-6)
    with h5py.File(tmp_path / "data.h5", "w") as handle:
        handle["x"] = pixels
    arrays = opened(tmp_path, {"path": "data.h5", "normalize": norm})
    assert arrays.arrays["x"].dtype == np.float32
    np.testing.assert_allclose(arrays.read(np.array([1, 0]), ["x"])["x"], expected[[1, 0]], rtol=1e-6)


@pytest.mark.parametrize("dataset,message", [
    ({"path": "data.npz", "normalize": {"mean": [0, 0], "std": [1]}},
     "datasets[0].normalize: array 'x' has 3 channels (the last axis of its samples, shape (4, 3)) but mean has 2 "
     "values and std 1; give 1 or 3 values each"),
    ({"path": "tokens.npz", "pad_id": 0, "normalize": {"mean": [0], "std": [1]}},
     "datasets[0].normalize: token ids cannot be normalized; remove normalize"),
    ({"path": "words.npz", "x": "w", "normalize": {"mean": [0], "std": [1]}},
     "datasets[0].normalize: array 'w' is not numeric (<U3); normalize works on numbers"),
])
def test_normalize_refusals_when_the_data_is_opened(tmp_path, dataset, message):
    np.savez(tmp_path / "data.npz", x=np.zeros((2, 4, 3), np.float32))
    np.savez(tmp_path / "tokens.npz", x=np.ones((2, 5), np.int32))
    np.savez(tmp_path / "words.npz", w=np.array([["abc"], ["def"]]))
    assert refusal(tmp_path, dataset).endswith(f"pipeline.yaml: {message}")


@pytest.mark.parametrize("normalize,dataset,message", [
    ({"mean": [1, 2, 3], "std": [1, 2]}, {}, "datasets[0].normalize: mean has 3 values and std 2; give each one value "
                                             "per channel, or one value for every channel"),
    ({"mean": [0], "std": [0.5, 0]}, {}, "datasets[0].normalize.std: expected every std > 0, got 0.0"),
    ({"mean": [0, float("nan")], "std": [1]}, {}, "datasets[0].normalize.mean[1]: expected a finite number, got nan"),
    ({"mean": [0]}, {}, "datasets[0].normalize.std: required key is missing"),
    ({"mean": [0], "std": [1]}, {"path": None, "builtin": "digits"},
     "datasets[0]: normalize applies to image folders and .npz/.h5 arrays"),
    ({"mean": [0], "std": [1]}, {"path": "t.txt", "tokenizer": {"kind": "byte"}, "sequence_length": 8},
     "datasets[0]: normalize applies to image folders and .npz/.h5 arrays"),
])
def test_normalize_refusals_in_the_config(normalize, dataset, message):
    entry = {k: v for k, v in {"path": "data.npz", "normalize": normalize, **dataset}.items() if v is not None}
    with pytest.raises(ConfigError) as caught:
        validate({"models": [{"builtin": "digits_cnn"}], "datasets": [entry]}, "pipeline.yaml")
    assert str(caught.value) == f"pipeline.yaml: {message}"


# -- preprocess --------------------------------------------------------------------------------------------------

def test_preprocess_runs_inside_the_forward_pass_and_the_inputs_stay_pixels(capsys, tmp_path):
    pixels, model, pipeline = pixel_project(tmp_path, 20, 3, {"preprocess": "mobilenet_v2"}, {"batch_size": 8},
                                            seed=2, classes=2)
    code, _, err = run(capsys, "run", str(pipeline))
    assert code == 0 and "fed unscaled" not in err  # preprocess_input expects 0-255 pixels
    result = summary(tmp_path / "outputs/t")
    assert result["pairs"][0]["unscaled_inputs"] == []
    assert result["models"][0]["source"].endswith("; inputs through keras.applications.mobilenet_v2.preprocess_input")
    with StoreReader(tmp_path / "outputs/t/activations.h5") as store:
        rows = store.file["datasets/d/index"][()]
        np.testing.assert_array_equal(store.file["datasets/d/inputs/x"][()], pixels[rows])  # as on disk
        conv = store.layer_group("m", "d", "conv")["maps"][()]
        out = store.layer_group("m", "d", "out")["pooled"][()]
    prepared = keras.applications.mobilenet_v2.preprocess_input(pixels[rows].astype(np.float32))  # its own copy
    assert prepared.min() >= -1 and prepared.max() <= 1
    tap = keras.Model(model.input, model.get_layer("conv").output)
    np.testing.assert_allclose(conv, np.asarray(tap(prepared)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out, np.asarray(model(prepared)), rtol=1e-5, atol=1e-5)


def test_preprocess_reaches_the_random_twin_and_a_rescale_is_said(caplog, tmp_path):
    from deeprep_report.extract.plan import make_plan

    conv_model(3).save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", x=np.zeros((4, 6, 6, 3), np.float32))
    path = write_pipeline(tmp_path, {
        "run": {"name": "t", "preset": "full"}, "models": [{"name": "m", "path": "model.keras", "preprocess": "resnet50"}],
        "datasets": [{"name": "d", "path": "data.npz", "rescale": 0.5}]})
    with caplog.at_level("WARNING", logger="deeprep"):
        plan = make_plan(load_config(path))
    assert [(m.name, m.preprocess) for m in plan.models] == [("m", "resnet50"), ("m@random", "resnet50")]
    assert plan.models[1].loaded.source.endswith("; inputs through keras.applications.resnet50.preprocess_input")
    assert ("model m: keras.applications.resnet50.preprocess_input expects pixels in 0–255, but dataset d sets "
            "rescale (datasets[0].rescale); remove it, or remove models[0].preprocess") in caplog.text


def two_inputs() -> keras.Model:
    a, b = keras.Input((4, 4, 3), name="a"), keras.Input((4, 4, 3), name="b")
    return keras.Model([a, b], keras.layers.Add(name="sum")([a, b]))


def tokens() -> keras.Model:
    ids = keras.Input((5,), dtype="int32", name="ids")
    return keras.Model(ids, keras.layers.Embedding(10, 3, name="embed")(ids))


@pytest.mark.parametrize("build,name,message", [
    (lambda: conv_model(3), "mobilenetv2", "models[0].preprocess: keras.applications has no module 'mobilenetv2' "
                                           "with a preprocess_input (did you mean 'mobilenet_v2'?)"),
    (lambda: conv_model(3), "bert", "models[0].preprocess: keras.applications has no module 'bert' with a "
                                    "preprocess_input; expected one of: convnext, densenet"),
    (two_inputs, "mobilenet_v2", "models[0].preprocess: preprocess applies to a model with one image input; model "
                                 "'m' has inputs 'a', 'b'"),
    (tokens, "mobilenet_v2", "models[0].preprocess: model 'm' takes token ids or integers ('ids', int32); "
                             "preprocess_input is for images"),
    (lambda: conv_model(4), "resnet50", "models[0].preprocess: keras.applications.resnet50.preprocess_input turns the "
                                        "input of model 'm' from (6, 6, 4) into (6, 6, 3) per sample; it expects RGB "
                                        "images (3 channels on the last axis)"),
])
def test_preprocess_refusals(tmp_path, build, name, message):
    from deeprep_report.extract.plan import make_plan

    build().save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", x=np.zeros((2, 6, 6, 3), np.float32))
    path = write_pipeline(tmp_path, {"models": [{"name": "m", "path": "model.keras", "preprocess": name}],
                                     "datasets": [{"name": "d", "path": "data.npz"}]})
    with pytest.raises(ConfigError) as caught:
        make_plan(load_config(path))
    assert f"pipeline.yaml: {message}" in str(caught.value)


def test_preprocess_names_are_module_names():
    with pytest.raises(ConfigError) as caught:
        validate({"models": [{"builtin": "digits_cnn", "preprocess": "keras.applications.resnet50"}],
                  "datasets": [{"builtin": "digits"}]}, "pipeline.yaml")
    assert str(caught.value) == ("pipeline.yaml: models[0].preprocess: expected a keras.applications module name "
                                 "such as mobilenet_v2, got 'keras.applications.resnet50'")


@pytest.mark.parametrize("entry,message", [
    ({"path": "data.npz", "image_size": [8, 8]}, "datasets[0]: image_size applies to image folders; arrays and text "
                                                 "keep their own shape"),
    ({"builtin": "digits", "color_mode": "grayscale"}, "datasets[0]: color_mode applies to image folders; arrays "
                                                       "and text keep their own shape"),
])
def test_image_folder_settings_are_refused_elsewhere(entry, message):
    """image_size and color_mode were accepted and ignored on arrays: nothing silent."""
    with pytest.raises(ConfigError) as caught:
        validate({"models": [{"builtin": "digits_cnn"}], "datasets": [entry]}, "pipeline.yaml")
    assert str(caught.value) == f"pipeline.yaml: {message}"
