"""What deeprep captures of the keras.applications families, tried as a user would (weights=None, small inputs).

For each family: build it, replay its graph (``LayerGraph``), select every layer, run the compiled forward pass
of all of them on two random images, and print how many layers were captured, which were not and why, and the
largest difference between a captured output and Keras's own sub-model output for three layers. Offline.

    python benchmarks/applications.py [--families ResNet50,MobileNetV3Small]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default=",".join(FAMILIES))
    args = parser.parse_args()
    from deeprep_report.tf_runtime import import_tensorflow

    import_tensorflow()
    for name in args.families.split(","):
        print(audit(name, FAMILIES[name]), flush=True)


if __name__ == "__main__":
    main()
