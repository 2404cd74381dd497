"""Layer selectors by Keras class and case-insensitive glob (issue 14, part 5): one matching rule for layer
selection, the checks and the report, each checked against a list comprehension over the model's layers."""

from __future__ import annotations

import pytest

from deeprep_report.config import ConfigError, validate
from deeprep_report.config.selectors import LayerSelector, select

keras = pytest.importorskip("keras")

from deeprep_report.extract.graph import LayerGraph, SelectionError  # noqa: E402


def selectors(value) -> list:
    """``models[0].layers`` as the config validates it."""
    return validate({"models": [{"builtin": "digits_cnn", "layers": value}], "datasets": [{"builtin": "digits"}]},
                    "pipeline.yaml").models[0].layers


@pytest.fixture(scope="module")
def mobilenet(tf_quiet_module):
    model = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3))
    return model, LayerGraph(model, "mnet")


@pytest.fixture(scope="module")
def tf_quiet_module():
    from deeprep_report.tf_runtime import import_tensorflow

    return import_tensorflow()


def picked(graph: LayerGraph, value) -> list[str]:
    return [info.path for info in graph.select(selectors(value))[0]]


def test_mobilenet_convolutions_by_glob_and_by_type(mobilenet):
    model, graph = mobilenet
    names = [layer.name for layer in model.layers]
    sensitive = picked(graph, ["*conv*"])
    assert sensitive == [n for n in names if "conv" in n] and all(n.startswith("expanded_conv_") for n in sensitive)
    assert len(sensitive) == 5
    insensitive = picked(graph, [{"glob": "*conv*", "case": "insensitive"}])
    assert insensitive == [n for n in names if "conv" in n.lower()]
    assert {"Conv1", "Conv_1"} <= set(insensitive) and len(insensitive) == 10
    convolutions = picked(graph, [{"type": "Conv2D"}])
    assert convolutions == [layer.name for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert len(convolutions) == 35 and "block_16_project" in convolutions
    both = picked(graph, [{"type": ["Conv2D", "DepthwiseConv2D"]}])
    assert both == [layer.name for layer in model.layers if type(layer).__name__ in ("Conv2D", "DepthwiseConv2D")]
    assert picked(graph, [{"type": "conv2d", "case": "insensitive"}]) == convolutions
    blocks = picked(graph, [{"type": "Conv2D", "glob": "block_*"}])  # both keys: AND
    assert blocks == [n for n in convolutions if n.startswith("block_")] and len(blocks) == 32
    assert picked(graph, ["Conv1", {"type": "Dense"}]) == ["Conv1", "predictions"]  # strings as before, mixed


def test_a_mapping_that_matches_nothing_names_itself_and_the_types(mobilenet):
    _, graph = mobilenet
    with pytest.raises(SelectionError) as caught:
        graph.select(selectors(["Conv1", {"type": ["Conv3D", "LSTM"], "glob": "x*"}]))
    assert caught.value.index == 1
    assert str(caught.value) == (
        "selector {type: [Conv3D, LSTM], glob: 'x*'} matches no layer in model 'mnet'; its layer types: Add, "
        "BatchNormalization, Conv2D, Dense, DepthwiseConv2D, GlobalAveragePooling2D, ReLU, ZeroPadding2D")
    with pytest.raises(SelectionError) as caught:
        graph.select(selectors([{"glob": "*CONV*"}]))
    assert str(caught.value) == "selector {glob: '*CONV*'} matches no layer in model 'mnet'"


@pytest.mark.parametrize("value,message", [
    ([{"tpye": "Conv2D"}], "models[0].layers[0].tpye: unknown key (did you mean 'type'?)"),
    (["conv1", {}], "models[0].layers[1]: a selector mapping needs type, glob or both, e.g. {type: Conv2D} or "
                    "{glob: '*conv*'}"),
    ([{"type": []}], "models[0].layers[0].type: expected a Keras class name such as Conv2D, or a non-empty list of "
                     "them, got []"),
    ([{"type": ["Conv2D", 3]}], "models[0].layers[0].type: expected a Keras class name such as Conv2D, or a "
                                "non-empty list of them, got ['Conv2D', 3]"),
    ([{"glob": ""}], "models[0].layers[0].glob: expected a pattern such as '*conv*', got ''"),
    ([{"glob": "a*", "case": "upper"}], "models[0].layers[0].case: expected 'sensitive' or 'insensitive', got 'upper'"),
    ([3], "models[0].layers: expected 'all' or a non-empty list of layer names, patterns or {type: ..., glob: ...} "
          "mappings, got [3]"),
])
def test_selector_mappings_are_checked_in_the_config(value, message):
    with pytest.raises(ConfigError) as caught:
        selectors(value)
    assert str(caught.value) == f"pipeline.yaml: {message}"


def test_checks_and_report_select_by_the_class_names_of_the_summary():
    from deeprep_report.audit.checks import evaluate
    from pydantic import TypeAdapter

    from deeprep_report.config import Check

    layers = {"conv": "Conv2D", "block/conv": "Conv2D", "dense": "Dense"}
    assert select([LayerSelector(type="Conv2D")], layers) == ["conv", "block/conv"]
    assert select([LayerSelector(glob="BLOCK/*", case="insensitive")], layers) == ["block/conv"]
    assert select(["dense", LayerSelector(type="Dense", glob="x")], layers) == ["dense"]
    assert validate({"models": [{"builtin": "digits_cnn"}], "datasets": [{"builtin": "digits"}],
                     "report": {"layers": [{"type": "Dense"}]}}, "p.yaml").report.layers == [LayerSelector(type="Dense")]
    stats = {"dead_units": 0, "dead_fraction": 0.0, "nonfinite_count": 0}
    pair = {"model": "m", "dataset": "d", "analysis": None,
            "layers": [{"path": p, "class_name": c, "units": 10, "activation": "relu", "stats": stats}
                       for p, c in layers.items()]}
    weights = [{"path": "conv", "params": 9, "nonfinite": 1}, {"path": "stem", "params": 9, "nonfinite": 1}]
    run = {"models": [{"name": "m", "baseline_of": None, "weights": weights,
                       "layers": [{"path": "stem", "class_name": "Conv2D"},
                                  *({"path": p, "class_name": c} for p, c in layers.items())]}],
           "pairs": [pair], "comparison": None}
    check = TypeAdapter(Check).validate_python({"rule": "nan_inf", "layers": [{"type": "Conv2D"}]})
    results = evaluate([check], run, None)
    # activations: the pair's Conv2D layers; weights: every Conv2D of the model, captured or not
    assert [(r.layer, r.status) for r in results] == [("conv", "pass"), ("block/conv", "pass"), ("conv", "fail"),
                                                      ("stem", "fail")]
