"""SavedModel folders as one-layer Keras models: the serving signature's outputs, nothing inside.

Keras 3 cannot rebuild the layers of a SavedModel, so its serving signature is
wrapped as a single layer (``saved_model``) whose outputs are captured. Two
readers, in order:

* TensorFlow's object-graph loader (through ``keras.layers.TFSMLayer``): what
  ``model.export()`` and recent ``tf.saved_model.save`` write.
* TensorFlow's v1 loader, for folders the first one cannot revive: Keras-2-era
  models whose saved optimizer has no Python class any more (``'_UserObject'
  object has no attribute 'add_slot'``). It imports the serving graph and
  restores its variables, without the object graph. Those variables are read
  back from the checkpoint so the weights audit still sees them (the training
  state left out).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import keras
import numpy as np

from deeprep_report.errors import first_line

log = logging.getLogger("deeprep")


class SavedModelError(Exception):
    """A folder that neither loader can read; the message is the first loader's error (and the second's)."""


def load_saved_model(path: Path, name: str) -> tuple[Any, str]:
    """(a Keras model of the folder's serving outputs, which loader read it: ``"v2"`` or ``"v1"``)."""
    endpoint = _endpoint(path)
    try:
        layer = keras.layers.TFSMLayer(str(path), call_endpoint=endpoint, name="saved_model")
        reader = "v2"
        signature = layer.call_endpoint_fn
    except Exception as first:  # noqa: BLE001 - TensorFlow raises many types for a folder it cannot revive
        try:
            layer = V1SignatureLayer(path, endpoint, name="saved_model")
        except Exception as second:  # noqa: BLE001
            raise SavedModelError(f"{first_line(first)} (TensorFlow's v1 loader: {first_line(second)})") from None
        log.info("model %s: SavedModel read by TensorFlow's v1 loader (%s); its serving outputs are captured, its "
                 "weights read from the checkpoint", name, first_line(first))
        reader = "v1"
        signature = layer.function
    _, kwargs = signature.structured_input_signature
    inputs = {key: keras.Input(batch_shape=tuple(spec.shape), dtype=spec.dtype.name, name=key)
              for key, spec in kwargs.items()}
    outputs = layer(next(iter(inputs.values())) if len(inputs) == 1 else inputs)
    if isinstance(outputs, dict) and len(outputs) > 1:
        outputs = {key: keras.layers.Identity(name=key)(value) for key, value in outputs.items()}
    elif isinstance(outputs, dict):
        outputs = next(iter(outputs.values()))
    return keras.Model(next(iter(inputs.values())) if len(inputs) == 1 else inputs, outputs, name=name), reader


def _endpoint(path: Path) -> str:
    """The signature to call, read from ``saved_model.pb`` (so the folder is loaded once, by the reader that
    wraps it): ``serving_default``, else the first one (``__``-prefixed ones are TensorFlow's own)."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / "saved_model.pb").read_bytes())
    names = [name for graph in proto.meta_graphs for name in graph.signature_def if not name.startswith("__")]
    if not names:
        raise SavedModelError("the SavedModel has no serving signature")
    return "serving_default" if "serving_default" in names else names[0]


class V1SignatureLayer(keras.layers.Layer):
    """A SavedModel's serving signature read by TensorFlow's v1 loader, as one Keras layer."""

    def __init__(self, path: Path, endpoint: str, **kwargs: Any) -> None:
        from tensorflow.python.saved_model import load_v1_in_v2  # the v1 reader; no public v2-eager equivalent

        super().__init__(**kwargs)
        self._loaded = load_v1_in_v2.load(str(path), tags=["serve"])
        self.function = self._loaded.signatures[endpoint]
        self._names = list(self.function.structured_input_signature[1])
        for weight_name, value in checkpoint_weights(path):  # copies for the audit; the graph uses its own
            self.add_weight(name=weight_name, shape=value.shape, dtype=str(value.dtype), trainable=False,
                            initializer=keras.initializers.Constant(value))
        self.built = True

    def call(self, inputs: Any) -> Any:
        feed = inputs if isinstance(inputs, dict) else {self._names[0]: inputs}
        return self.function(**feed)


def checkpoint_weights(path: Path) -> list[tuple[str, np.ndarray]]:
    """The model's floating-point variables stored in ``variables/``, by name; the training state is left out
    (optimizer slots and hyperparameters, Keras 2's metric totals under ``keras_api/``)."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(path / "variables" / "variables"))
    found = []
    for key in sorted(reader.get_variable_to_shape_map()):
        if "OPTIMIZER_SLOT" in key or key.startswith(("optimizer/", "keras_api/", "save_counter", "_CHECKPOINTABLE")):
            continue
        value = np.asarray(reader.get_tensor(key))
        if value.dtype.kind == "f":
            found.append((key.replace("/.ATTRIBUTES/VARIABLE_VALUE", "").replace("/", "."), value))
    return found
