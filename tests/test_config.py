"""The config stage: typed validation with one-line errors naming file, field and expectation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deeprep_report.config import Pipeline, format_loc, json_schema, load_config, parse_field_path
from deeprep_report.errors import ConfigError, UserError

from conftest import write_pipeline

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = {"models": [{"name": "m", "builtin": "digits_cnn"}], "datasets": [{"name": "d", "builtin": "digits"}]}


def error_of(tmp_path: Path, text: str, overrides: tuple[str, ...] = ()) -> str:
    path = tmp_path / "pipeline.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError) as caught:
        load_config(path, overrides)
    message = str(caught.value)
    assert "\n" not in message
    return message.replace(str(tmp_path) + "/", "")


def test_demo_pipeline_validates_with_documented_keys():
    config = load_config(ROOT / "pipeline.yaml")
    pipeline = config.pipeline
    assert pipeline.run.name == "digits-demo" and pipeline.run.output_dir == "outputs" and pipeline.run.seed == 0
    assert pipeline.models[0].builtin == "digits_cnn" and pipeline.models[0].layers == "all"
    assert pipeline.datasets[0].limit == 1000 and pipeline.datasets[0].batch_size == 64


def test_issue_example_keys_are_accepted(tmp_path):
    path = write_pipeline(tmp_path, {
        "run": {"name": "digits-demo", "output_dir": "outputs", "seed": 0},
        "models": [{"name": "digits_cnn", "path": "models/digits_cnn.keras", "layers": ["conv*", "dense_1"]}],
        "datasets": [{"name": "digits", "path": "data/digits.npz", "limit": 1000, "batch_size": 64}],
    })
    config = load_config(path)
    assert config.pipeline.models[0].layers == ["conv*", "dense_1"]
    assert config.resolve("data/digits.npz") == tmp_path / "data/digits.npz"
    resolved = config.resolved_dict()
    assert resolved["models"][0]["path"] == str((tmp_path / "models/digits_cnn.keras").resolve())
    assert resolved["store"]["full_samples"] == 64 and resolved["stats"]["histogram_bins"] == 64


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml")
    assert str(caught.value) == f"{tmp_path / 'nope.yaml'}: no such pipeline file"


def test_invalid_yaml_names_line_and_column(tmp_path):
    message = error_of(tmp_path, "models:\n  - name: m\n   builtin: x\n")
    assert re.fullmatch(r"pipeline\.yaml: line 3, column \d+: invalid YAML: .+", message), message


def test_duplicate_key_is_an_error(tmp_path):
    message = error_of(tmp_path, "run: {seed: 1}\nrun: {seed: 2}\nmodels: []\ndatasets: []\n")
    assert message == "pipeline.yaml: line 2, column 1: invalid YAML: key 'run' is given twice"


def test_empty_and_non_mapping_files(tmp_path):
    assert error_of(tmp_path, "") == "pipeline.yaml: file is empty; expected keys run, models, datasets"
    assert error_of(tmp_path, "- a\n") == "pipeline.yaml: expected a mapping with keys run, models, datasets, got list"


def test_unknown_key_suggests_the_closest(tmp_path):
    text = "models:\n  - name: m\n    builtin: digits_cnn\n    lyers: all\ndatasets:\n  - builtin: digits\n"
    assert error_of(tmp_path, text) == "pipeline.yaml: models[0].lyers: unknown key (did you mean 'layers'?)"


def test_unknown_key_without_close_match_lists_the_keys(tmp_path):
    text = "run: {colour: red}\nmodels: [{builtin: digits_cnn}]\ndatasets: [{builtin: digits}]\n"
    assert error_of(tmp_path, text) == (
        "pipeline.yaml: run.colour: unknown key; expected one of: name, output_dir, seed, preset, executor")


def test_wrong_type(tmp_path):
    text = "models: [{builtin: digits_cnn}]\ndatasets: [{builtin: digits, batch_size: many}]\n"
    assert error_of(tmp_path, text) == "pipeline.yaml: datasets[0].batch_size: expected an integer, got 'many'"


def test_out_of_range_and_enum(tmp_path):
    text = "models: [{builtin: digits_cnn}]\ndatasets: [{builtin: digits, limit: 0}]\n"
    assert error_of(tmp_path, text) == "pipeline.yaml: datasets[0].limit: expected greater than or equal to 1, got 0"
    text = "models: [{builtin: digits_cnn}]\ndatasets: [{builtin: digits}]\nstore: {dtype: int8}\n"
    assert error_of(tmp_path, text) == "pipeline.yaml: store.dtype: expected 'float32' or 'float16', got 'int8'"


def test_missing_section(tmp_path):
    assert error_of(tmp_path, "models: [{builtin: digits_cnn}]\n") == "pipeline.yaml: datasets: required key is missing"


def test_exactly_one_source(tmp_path):
    text = "models: [{path: m.keras, builtin: digits_cnn}]\ndatasets: [{builtin: digits}]\n"
    assert error_of(tmp_path, text) == (
        "pipeline.yaml: models[0]: give exactly one of path, builtin, application, factory, preset (got path and "
        "builtin)")
    text = "models: [{builtin: digits_cnn}]\ndatasets: [{limit: 3}]\n"
    assert error_of(tmp_path, text) == "pipeline.yaml: datasets[0]: give exactly one of path, builtin (got none)"


def test_layers_must_be_all_or_names(tmp_path):
    text = "models: [{builtin: digits_cnn, layers: 3}]\ndatasets: [{builtin: digits}]\n"
    assert error_of(tmp_path, text) == (
        "pipeline.yaml: models[0].layers: expected 'all' or a non-empty list of layer names, patterns or "
        "{type: ..., glob: ...} mappings, got 3")


def test_names_are_unique_and_references_resolve(tmp_path):
    text = "models: [{builtin: digits_cnn}, {name: digits_cnn, path: m.keras}]\ndatasets: [{builtin: digits}]\n"
    assert error_of(tmp_path, text) == (
        "pipeline.yaml: models[1].name: name 'digits_cnn' is already used by models[0]; names must be unique")
    text = "models: [{builtin: digits_cnn, datasets: [digit]}]\ndatasets: [{builtin: digits}]\n"
    assert error_of(tmp_path, text) == "pipeline.yaml: models[0].datasets[0]: no dataset named 'digit' (did you mean 'digits'?)"


def test_names_default_to_the_source():
    pipeline = Pipeline.model_validate({"models": [{"path": "dir/my_net.keras"}, {"application": "MobileNetV2"}],
                                        "datasets": [{"path": "data/train.npz"}, {"builtin": "digits"}]})
    assert [m.name for m in pipeline.models] == ["my_net", "MobileNetV2"]
    assert [d.name for d in pipeline.datasets] == ["train", "digits"]


def test_run_name_is_one_folder(tmp_path):
    text = "run: {name: a/b}\nmodels: [{builtin: digits_cnn}]\ndatasets: [{builtin: digits}]\n"
    assert error_of(tmp_path, text) == "pipeline.yaml: run.name: expected a folder name without slashes, got 'a/b'"


def test_small_conveniences():
    pipeline = Pipeline.model_validate({"models": [{"builtin": "digits_cnn", "layers": "conv1"}],
                                        "datasets": [{"path": "imgs", "rescale": "1/255"}],
                                        "store": {"full_samples": "all"}})
    assert pipeline.models[0].layers == ["conv1"]
    assert pipeline.datasets[0].rescale == pytest.approx(1 / 255)
    assert pipeline.store.full_samples == "all"


def test_overrides_apply_before_validation(tmp_path):
    path = write_pipeline(tmp_path, MINIMAL)
    config = load_config(path, ["run.seed=7", "datasets[0].limit=10", "store.dtype=float16",
                                "models[0].layers=[conv1, dense_1]"])
    assert config.pipeline.run.seed == 7
    assert config.pipeline.datasets[0].limit == 10
    assert config.pipeline.store.dtype == "float16"
    assert config.pipeline.models[0].layers == ["conv1", "dense_1"]


def test_override_errors_name_the_override(tmp_path):
    path = write_pipeline(tmp_path, MINIMAL)
    with pytest.raises(UserError) as caught:
        load_config(path, ["run.seeed=3"])
    assert str(caught.value) == "--set run.seeed=3: unknown key (did you mean 'seed'?)"
    with pytest.raises(UserError) as caught:
        load_config(path, ["datasets[3].limit=1"])
    assert str(caught.value) == "--set datasets[3].limit=1: datasets[3]: no such entry (1 given)"
    with pytest.raises(UserError) as caught:
        load_config(path, ["run.seed"])
    assert str(caught.value) == "--set 'run.seed': expected key.path=value, e.g. run.seed=1 or datasets[0].limit=100"


def test_field_paths_round_trip():
    for text in ("models[0].layers[2]", "run.seed", "datasets[10].x.image"):
        assert format_loc(parse_field_path(text)) == text


def test_schema_describes_every_key():
    schema = json_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    assert set(schema["properties"]) == {"run", "models", "datasets", "extract", "store", "stats", "analysis", "checks",
                                         "compare", "report"}
    model_fields = schema["$defs"]["ModelSpec"]["properties"]
    assert {"name", "path", "builtin", "layers", "allow_lambda"} <= set(model_fields)
    assert all("description" in field for field in model_fields.values())


def test_every_config_key_is_documented():
    """docs/config.md must mention every key the schema accepts, so the docs cannot drift silently."""
    text = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    schema = json_schema()
    sections = {"run": "RunSection", "run.executor": "ExecutorSection", "extract": "ExtractSection",
                "models": "ModelSpec", "datasets": "DatasetSpec", "store": "StoreSection",
                "stats": "StatsSection", "report": "ReportSection", "report.gallery": "GallerySection",
                "report.exemplars": "ExemplarSection", "analysis": "AnalysisSection", "analysis.probes": "ProbeSection",
                "analysis.cka": "CKASection", "analysis.geometry": "GeometrySection", "analysis.classes": "ClassSection",
                "analysis.transfer": "TransferSection", "analysis.tokens": "TokenSection", "compare": "CompareSection"}
    checks = [("checks", name) for name in schema["$defs"] if name.endswith("Check")]
    assert len(checks) == 9
    for section, definition in [*sections.items(), *checks]:
        for key, field in schema["$defs"][definition]["properties"].items():
            if "$ref" in field:  # a nested section: its own keys are checked
                continue
            name = f"`{section}[].{key}`" if section in ("models", "datasets", "checks") else f"`{section}.{key}`"
            assert name in text, f"docs/config.md lacks {name}"
