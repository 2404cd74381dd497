"""What deeprep captures of the keras.applications families and of the odd models people have, tried as a user
would (weights=None, small inputs).

For each family: build it, replay its graph (``LayerGraph``), select every layer, run the compiled forward pass
of all of them on two random images, and print how many layers were captured, which were not and why, and the
largest difference between a captured output and Keras's own sub-model output for three layers. The odd models
(a subclassed model, multi-output, TimeDistributed, BatchNormalization in nested blocks, an LSTM state
concatenation, a keras-hub BERT backbone built from a config) print the same counts, with the difference between
the captured last layer and the model's own output. Offline.

    python benchmarks/applications.py [--families ResNet50,MobileNetV3Small] [--odd]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

FAMILIES = {
    "ResNet50": (64, 64, 3), "EfficientNetV2B0": (64, 64, 3), "ConvNeXtTiny": (64, 64, 3),
    "DenseNet121": (64, 64, 3), "Xception": (71, 71, 3), "NASNetMobile": (64, 64, 3),
    "MobileNetV3Small": (64, 64, 3),
}


def audit(name: str, shape: tuple[int, int, int]) -> str:
    import keras
    import numpy as np
    import tensorflow as tf

    from deeprep_report.extract.graph import LayerGraph
    from deeprep_report.tf_runtime import graph_safe_names

    keras.utils.set_random_seed(0)
    started = time.perf_counter()
    model = getattr(keras.applications, name)(weights=None, input_shape=shape)
    graph = LayerGraph(model, name)
    selected, skipped = graph.select("all")
    paths = [info.path for info in selected]
    x = np.random.default_rng(0).random((2, *shape), dtype=np.float32)
    with graph_safe_names():
        outputs = tf.function(lambda batch: graph.run(batch, paths), autograph=False)(tf.constant(x))
    worst = 0.0
    for info in selected[:: max(1, len(selected) // 3)][:3]:
        expected = keras.Model(model.inputs, model.get_layer(info.name).output)(x)
        worst = max(worst, float(np.abs(np.asarray(outputs[info.path]) - np.asarray(expected)).max()))
    reasons = Counter(info.reason for info in skipped)
    listed = "; ".join(f"{count} × {reason}" for reason, count in reasons.items()) or "none"
    return (f"{name:18s} {len(selected):4d} of {len(graph.layers):4d} layers captured, max |Δ| vs Keras "
            f"{worst:.1e}, {time.perf_counter() - started:5.1f} s; not captured: {listed}")


def odd_models() -> dict[str, tuple[object, object]]:
    """(model, a batch of two inputs) of each odd model, built in code."""
    import keras
    import numpy as np
    from keras import layers

    rng = np.random.default_rng(0)
    image = rng.random((2, 16, 16, 3), dtype=np.float32)

    class Block(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.conv = layers.Conv2D(8, 3, padding="same", activation="relu")
            self.norm = layers.BatchNormalization()

        def call(self, x):
            return self.norm(self.conv(x))

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.blocks = [Block(), Block()]
            self.pool = layers.GlobalAveragePooling2D()
            self.head = layers.Dense(4, activation="softmax")

        def call(self, x):
            for block in self.blocks:
                x = block(x)
            return self.head(self.pool(x))

    subclassed = Subclassed()
    subclassed(image)
    x = keras.Input((16, 16, 3))
    trunk = layers.GlobalAveragePooling2D()(layers.Conv2D(8, 3, activation="relu")(x))
    multi = keras.Model(x, [layers.Dense(3, activation="softmax", name="cls")(trunk), layers.Dense(1, name="reg")(trunk)])
    frames = keras.Input((4, 16, 16, 3))
    per_frame = layers.TimeDistributed(layers.Conv2D(4, 3, activation="relu"), name="frames_conv")(frames)
    video = keras.Model(frames, layers.Dense(2)(layers.GlobalAveragePooling3D()(per_frame)))

    def block(index: int) -> keras.Model:
        inner = keras.Input((16, 16, 8))
        h = layers.BatchNormalization(name="bn")(layers.Conv2D(8, 3, padding="same", name="conv")(inner))
        return keras.Model(inner, layers.ReLU(name="relu")(h), name=f"block{index}")

    x = keras.Input((16, 16, 3))
    h = layers.Conv2D(8, 1, name="stem")(x)
    nested = keras.Model(x, block(2)(block(1)(h)))
    seq = keras.Input((10, 5))
    _, state_h, state_c = layers.LSTM(6, return_state=True, name="lstm")(seq)
    lstm = keras.Model(seq, layers.Dense(2)(layers.Concatenate(name="states")([state_h, state_c])))
    found = {"subclassed (blocks in a list)": (subclassed, image), "multi-output": (multi, image),
             "TimeDistributed": (video, rng.random((2, 4, 16, 16, 3), dtype=np.float32)),
             "BatchNorm in nested blocks": (nested, image), "LSTM states concatenated": (lstm, rng.random(
                 (2, 10, 5), dtype=np.float32))}
    try:
        import keras_hub

        bert = keras_hub.models.BertBackbone(vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=16,
                                             intermediate_dim=32, max_sequence_length=12)
        ids = rng.integers(1, 100, (2, 12)).astype("int32")
        found["keras-hub BertBackbone"] = (bert, {"token_ids": ids, "segment_ids": np.zeros_like(ids),
                                                  "padding_mask": np.ones_like(ids)})
    except ImportError:
        pass
    return found


def audit_odd(name: str, model: object, x: object) -> str:
    import keras
    import numpy as np
    import tensorflow as tf

    from deeprep_report.extract.graph import LayerGraph
    from deeprep_report.tf_runtime import graph_safe_names

    graph = LayerGraph(model, name)
    selected, skipped = graph.select("all")
    paths = [info.path for info in selected]
    with graph_safe_names():
        outputs = tf.function(lambda batch: graph.run(batch, paths), autograph=False)(
            keras.tree.map_structure(tf.constant, x))
    own = keras.tree.flatten(model(x))
    last = np.asarray(outputs[paths[-1]])
    worst = min((float(np.abs(last - np.asarray(o)).max()) for o in own if tuple(o.shape) == last.shape),
                default=float("nan"))
    reasons = Counter(info.reason for info in skipped)
    listed = "; ".join(f"{count} × {reason}" for reason, count in reasons.items()) or "none"
    return (f"{name:30s} {len(selected):4d} of {len(graph.layers):4d} layers captured, last layer vs the model's "
            f"output |Δ| {worst:.1e}; not captured: {listed}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--odd", action="store_true", help="also the odd models (subclassed, multi-output, ...)")
    args = parser.parse_args()
    from deeprep_report.tf_runtime import import_tensorflow

    import_tensorflow()
    for name in filter(None, args.families.split(",")):
        print(audit(name, FAMILIES[name]), flush=True)
    if args.odd:
        for name, (model, x) in odd_models().items():
            print(audit_odd(name, model, x), flush=True)


if __name__ == "__main__":
    main()
