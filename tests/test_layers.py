"""The replayed layer graph: paths, selection rules, capture problems, and tap outputs equal to Keras."""

from __future__ import annotations

import numpy as np
import pytest

import models as zoo

keras = pytest.importorskip("keras")
from keras import layers  # noqa: E402

from deeprep_report.extract.graph import LayerGraph, SelectionError  # noqa: E402


@pytest.fixture(autouse=True)
def _tf(tf_quiet):
    keras.utils.set_random_seed(0)


def paths(graph: LayerGraph) -> list[str]:
    return [info.path for info in graph.layers]


def test_nested_models_are_flattened_to_paths():
    graph = LayerGraph(zoo.nested(), "nested")
    assert paths(graph) == ["encoder/stem", "encoder/block/conv1", "encoder/block/conv2", "flat", "head"]
    assert graph.containers == ["encoder", "encoder/block"]
    assert graph.layers[1].inputs == ("encoder/stem",)
    assert graph.layers[0].inputs == ("input:pixels",)


@pytest.mark.parametrize("name", ["sequential", "functional", "nested", "multi_input"])
def test_tap_outputs_equal_layers_called_by_hand(name):
    model = getattr(zoo, name)()
    graph = LayerGraph(model, name)
    selected, _ = graph.select("all")
    paths = [info.path for info in selected]
    arrays = zoo.data(9)
    if name == "multi_input":
        arrays = {"image": arrays["x"], "meta": np.random.default_rng(1).normal(size=(9, 4)).astype(np.float32)}
        outputs = graph.run({"image": arrays["image"], "meta": arrays["meta"]}, paths)
    else:
        outputs = graph.run(arrays["x"], paths)
    reference = zoo.reference_outputs(name, model, arrays)
    assert set(outputs) == set(reference)
    for key, expected in reference.items():
        np.testing.assert_allclose(np.asarray(outputs[key]), expected, rtol=1e-5, atol=1e-6, err_msg=key)


def test_activations_are_found_and_inherited():
    graph = LayerGraph(zoo.sequential(), "seq")
    assert {i.path: i.activation for i in graph.layers} == {
        "conv": "relu", "pool": "relu", "flat": "relu", "hidden": "tanh", "out": "softmax"}
    functional = LayerGraph(zoo.functional(), "func")
    found = {i.path: i.activation for i in functional.layers}
    assert found["merge"] is None  # relu and sigmoid inputs: nothing to inherit
    assert found["logits"] == "linear"


def test_selection_by_name_glob_leaf_and_container():
    graph = LayerGraph(zoo.nested(), "nested")
    pick = lambda sel: [i.path for i in graph.select(sel)[0]]  # noqa: E731
    assert pick(["head"]) == ["head"]
    assert pick(["conv*"]) == ["encoder/block/conv1", "encoder/block/conv2"]
    assert pick(["encoder/block/conv2", "flat"]) == ["encoder/block/conv2", "flat"]
    assert pick(["encoder"]) == ["encoder/stem", "encoder/block/conv1", "encoder/block/conv2"]
    assert pick(["head", "h*"]) == ["head"]  # model order, no duplicates


def test_selection_errors_suggest_names():
    graph = LayerGraph(zoo.sequential(), "seq")
    with pytest.raises(SelectionError) as caught:
        graph.select(["conv", "pol"])
    assert caught.value.index == 1
    assert str(caught.value) == "no layer 'pol' in model 'seq' (did you mean 'pool'?)"
    with pytest.raises(SelectionError) as caught:
        graph.select(["dense*"])
    assert str(caught.value) == "pattern 'dense*' matches no layer in model 'seq'"


def test_shared_and_multi_output_layers_are_listed_not_fatal():
    x = keras.Input((4,), name="x")
    shared = layers.Dense(4, name="shared")
    h = shared(shared(x))
    rnn_in = layers.Reshape((2, 2), name="seq")(h)
    _, state = layers.SimpleRNN(3, return_state=True, name="rnn")(rnn_in)
    model = keras.Model(x, layers.Dense(1, name="out")(state))
    graph = LayerGraph(model, "m")
    selected, skipped = graph.select("all")
    reasons = {info.path: info.reason for info in skipped}
    assert [i.path for i in selected] == ["seq", "out"]
    assert reasons == {
        "shared": "called 2 times in the graph (a shared layer has no single output)",
        "rnn": "returns 2 tensors; only single-output layers are captured",
    }
    with pytest.raises(SelectionError) as caught:
        graph.select(["out", "shared"])
    assert caught.value.index == 1
    assert str(caught.value) == ("layer 'shared' of model 'm' cannot be captured: "
                                 "called 2 times in the graph (a shared layer has no single output)")
    assert [i.path for i in graph.select(["s*"])[0]] == ["seq"]  # a pattern skips what it cannot capture


def test_subclassed_model_without_inputs_is_a_clear_error():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(2)

        def call(self, inputs):
            return self.dense(inputs)

    with pytest.raises(ValueError) as caught:
        LayerGraph(Net(), "net")
    assert str(caught.value) == (
        "model 'net' is a subclassed model that was never built or called, so its input shape is unknown; call it "
        "once on a batch (or model.build(shape)) before returning it")
