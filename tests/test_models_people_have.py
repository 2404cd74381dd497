"""The models people have (issue 12): subclassed models captured through their sublayers, Keras-2-era
SavedModels through TensorFlow's v1 loader, legacy ``.h5`` files."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import models as zoo
from conftest import write_pipeline

keras = pytest.importorskip("keras")

from deeprep_report.cli import main  # noqa: E402
from deeprep_report.extract.graph import LayerGraph  # noqa: E402
from deeprep_report.store import StoreReader  # noqa: E402

SUBCLASSED = '''import keras
import numpy as np


class Block(keras.layers.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(units, activation="relu")
        self.norm = keras.layers.LayerNormalization()

    def call(self, x):
        return self.norm(self.dense(x))


class Net(keras.Model):
    def __init__(self):
        super().__init__()
        self.flat = keras.layers.Flatten()
        self.blocks = [Block(8, name="block"), Block(8, name="block")]  # one name twice: paths stay unique
        self.head = keras.layers.Dense(3, activation="softmax")
        self.spare = keras.layers.Dense(5)  # never used by call()

    def call(self, x):
        x = self.flat(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def build(called=True):
    net = Net()
    if called:
        net(np.zeros((2, 6, 6, 2), "float32"))
    else:
        net.build((None, 6, 6, 2))
    return net
'''


@pytest.fixture(autouse=True)
def _tf(tf_quiet):
    keras.utils.set_random_seed(0)


@pytest.fixture
def subnet(tmp_path):
    (tmp_path / "subnet.py").write_text(SUBCLASSED, encoding="utf-8")
    sys.path.insert(0, str(tmp_path))
    try:
        import subnet

        yield subnet
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("subnet", None)


def run(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_subclassed_model_is_traced_to_its_sublayers_by_attribute_path(subnet):
    for called in (True, False):
        graph = LayerGraph(subnet.build(called), "net")
        assert [(i.path, i.inputs, i.reason) for i in graph.layers] == [
            ("flat", ("input:input",), None),
            ("blocks/0/dense", ("flat",), None), ("blocks/0/norm", ("blocks/0/dense",), None),
            ("blocks/0", ("flat",), None),
            ("blocks/1/dense", ("blocks/0",), None), ("blocks/1/norm", ("blocks/1/dense",), None),
            ("blocks/1", ("blocks/0",), None),
            ("head", ("blocks/1",), None),
            ("spare", (), "not used by the model's call() for these inputs"),
        ]
        assert graph.layers[1].activation == "relu" and graph.layers[1].output_shape == (None, 8)
        assert graph.layers[7].activation == "softmax"
    with pytest.raises(ValueError, match="subclassed model that was never built or called"):
        LayerGraph(subnet.Net(), "net")


def test_a_subclassed_text_model_gets_integer_token_inputs():
    class Tagger(keras.Model):
        def __init__(self):
            super().__init__()
            self.embed = keras.layers.Embedding(50, 4, mask_zero=True)
            self.out = keras.layers.Dense(2)

        def call(self, ids):
            return self.out(self.embed(ids))

    model = Tagger()
    model(np.ones((1, 7), "int32"))
    graph = LayerGraph(model, "tagger")
    assert [str(t.dtype) for t in keras.tree.flatten(graph.inputs)] == ["int32"]
    assert [i.path for i in graph.layers] == ["embed", "out"]


def test_a_subclassed_model_runs_and_stores_its_sublayers_outputs(capsys, tmp_path, subnet):
    np.savez(tmp_path / "data.npz", **zoo.data(40))
    pipeline = write_pipeline(tmp_path, {
        "run": {"name": "t", "preset": "minimal"},
        "models": [{"name": "net", "factory": "subnet:build"}],
        "datasets": [{"name": "d", "path": "data.npz", "batch_size": 16}]})
    code, _, err = run(capsys, "run", str(pipeline), "--quiet")
    assert code == 0, err
    keras.utils.set_random_seed(0)  # the factory is seeded by run.seed (0): the same weights
    net = subnet.build()
    with StoreReader(tmp_path / "outputs/t/activations.h5") as store:
        assert store.layers("net", "d") == ["flat", "blocks/0/dense", "blocks/0/norm", "blocks/0", "blocks/1/dense",
                                            "blocks/1/norm", "blocks/1", "head"]
        x = zoo.data(40)["x"][store.file["datasets/d/index"][()]]
        first = net.blocks[0].dense(net.flat(x))
        np.testing.assert_allclose(store.layer_group("net", "d", "blocks/0/dense")["pooled"][()], first, rtol=1e-5,
                                   atol=1e-6)
        np.testing.assert_allclose(store.layer_group("net", "d", "head")["pooled"][()], net(x), rtol=1e-5, atol=1e-6)
        architecture = store.json_attr("models/net", "architecture")
        skipped = [(row["path"], row["reason"]) for row in architecture if not row["capturable"]]
        assert skipped == [("spare", "not used by the model's call() for these inputs")]
        weights = store.json_attr("models/net", "weights")
    assert sum(row["params"] for row in weights) == net.count_params()  # each weight counted once
    html = (tmp_path / "outputs/t/report.html").read_text(encoding="utf-8")
    assert "blocks/0/dense" in html and "not used by the model&#39;s call() for these inputs" in html
    block_row = html[html.index("<code>blocks/0</code>"):].split("</tr>")[0]
    assert "weights in its sublayers&#39; rows" in block_row  # its Dense and LayerNormalization rows hold them


KERAS2 = '''
import sys
import numpy as np
import tf_keras
from tensorflow.core.protobuf import saved_model_pb2

out = sys.argv[1]
tf_keras.utils.set_random_seed(0)
model = tf_keras.Sequential([tf_keras.Input((6, 6, 2)), tf_keras.layers.Flatten(),
                             tf_keras.layers.Dense(5, activation="relu", name="hidden"),
                             tf_keras.layers.Dense(3, activation="softmax", name="out")])
model.compile(tf_keras.optimizers.legacy.Adam(), "categorical_crossentropy")  # optimizer state is saved too
model.fit(np.random.rand(8, 6, 6, 2), np.eye(3)[np.arange(8) % 3], verbose=0)
model.save(out + "/model.h5")
model.save(out + "/savedmodel", save_format="tf")
# A SavedModel from an older TensorFlow: its optimizer type is one this TensorFlow cannot revive, so the
# object-graph loader fails on its slot variables ('_UserObject' object has no attribute 'add_slot').
proto = saved_model_pb2.SavedModel()
with open(out + "/savedmodel/saved_model.pb", "rb") as handle:
    proto.ParseFromString(handle.read())
for node in proto.meta_graphs[0].object_graph_def.nodes:
    if node.WhichOneof("kind") == "user_object" and node.user_object.identifier == "optimizer":
        node.user_object.identifier = "_generic_user_object"
with open(out + "/savedmodel/saved_model.pb", "wb") as handle:
    handle.write(proto.SerializeToString())
np.savez(out + "/weights.npz", *model.get_weights())
'''


@pytest.fixture(scope="module")
def keras2_files(tmp_path_factory):
    """A Keras-2 (tf_keras) model saved as a legacy .h5 file and as a SavedModel, written in another process (as
    on the machine that trained it), with its weights for the hand computation."""
    pytest.importorskip("tf_keras")
    import subprocess

    folder = tmp_path_factory.mktemp("keras2")
    done = subprocess.run([sys.executable, "-c", KERAS2, str(folder)], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    return folder


def by_hand(folder: Path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hidden, out) of the Keras-2 model computed with numpy from its saved weights."""
    kernel, bias, kernel2, bias2 = np.load(folder / "weights.npz").values()
    hidden = np.maximum(x.reshape(len(x), -1) @ kernel + bias, 0)
    logits = hidden @ kernel2 + bias2
    scores = np.exp(logits - logits.max(axis=1, keepdims=True))
    return hidden, scores / scores.sum(axis=1, keepdims=True)


def test_keras2_savedmodel_and_h5_files_are_read(capsys, tmp_path, keras2_files):
    np.savez(tmp_path / "data.npz", **zoo.data(30))
    pipeline = write_pipeline(tmp_path, {
        "run": {"name": "t", "preset": "minimal"},
        "models": [{"name": "sm", "path": str(keras2_files / "savedmodel"), "allow_saved_model_code": True},
                   {"name": "h5", "path": str(keras2_files / "model.h5")}],
        "datasets": [{"name": "d", "path": "data.npz", "batch_size": 16}]})
    code, _, err = run(capsys, "run", str(pipeline), "--quiet")
    assert code == 0, err
    log = (tmp_path / "outputs/t/run.log").read_text(encoding="utf-8")
    assert ("model sm: SavedModel read by TensorFlow's v1 loader ('_UserObject' object has no attribute 'add_slot'); "
            "its serving outputs are captured, its weights read from the checkpoint") in log
    with StoreReader(tmp_path / "outputs/t/activations.h5") as store:
        x = zoo.data(30)["x"][store.file["datasets/d/index"][()]]
        hidden, out = by_hand(keras2_files, x)
        assert store.layers("sm", "d") == ["saved_model"]
        np.testing.assert_allclose(store.layer_group("sm", "d", "saved_model")["pooled"][()], out, rtol=1e-5,
                                   atol=1e-6)
        assert store.attrs("models/sm")["source"].startswith("savedmodel-v1:")
        audited = store.json_attr("models/sm", "weights")
        assert sum(row["params"] for row in audited) == 72 * 5 + 5 + 5 * 3 + 3  # the model's weights, no optimizer
        assert store.layers("h5", "d")[-2:] == ["hidden", "out"]
        np.testing.assert_allclose(store.layer_group("h5", "d", "hidden")["pooled"][()], hidden, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(store.layer_group("h5", "d", "out")["pooled"][()], out, rtol=1e-5, atol=1e-6)


def test_time_distributed_multi_output_and_nested_batchnorm_equal_keras():
    frames = keras.Input((3, 8, 8, 2), name="frames")
    conv = keras.layers.TimeDistributed(keras.layers.Conv2D(4, 3, activation="relu"), name="per_frame")(frames)
    pooled = keras.layers.GlobalAveragePooling3D(name="pool")(conv)
    inner = keras.Input((4,))
    block = keras.Model(inner, keras.layers.BatchNormalization(name="bn")(keras.layers.Dense(4, name="dense")(inner)),
                        name="block")
    h = block(pooled)
    model = keras.Model(frames, [keras.layers.Dense(2, activation="softmax", name="cls")(h),
                                 keras.layers.Dense(1, name="reg")(h)])
    graph = LayerGraph(model, "video")
    selected, skipped = graph.select("all")
    assert [(i.path, i.activation) for i in selected] == [
        ("per_frame", "relu"), ("pool", "relu"), ("block/dense", "linear"), ("block/bn", None), ("reg", "linear"),
        ("cls", "softmax")]  # execution order
    assert skipped == []
    x = np.random.default_rng(0).random((5, 3, 8, 8, 2), dtype=np.float32)
    import tensorflow as tf

    outputs = tf.function(lambda batch: graph.run(batch, [i.path for i in selected]))(tf.constant(x))
    cls, reg = model(x)
    np.testing.assert_allclose(outputs["cls"], cls, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outputs["reg"], reg, rtol=1e-5, atol=1e-6)
    by_hand = model.get_layer("per_frame").layer(x.reshape(15, 8, 8, 2)).numpy().reshape(5, 3, 6, 6, 4)
    np.testing.assert_allclose(outputs["per_frame"], by_hand, rtol=1e-5, atol=1e-6)
