"""``models[].preprocess``: the ``preprocess_input`` of a ``keras.applications`` module, applied to the model's
input inside the compiled forward pass (extract/forward.py). The stored inputs stay the dataset's values, which
the report shows as pixels; the layers see what the model was trained on."""

from __future__ import annotations

import logging
import types
from typing import Any, Callable

import numpy as np

from deeprep_report.config import Config
from deeprep_report.errors import did_you_mean, first_line

log = logging.getLogger("deeprep")


def modules() -> list[str]:
    """The ``keras.applications`` modules that have a ``preprocess_input``."""
    import keras

    return [name for name in dir(keras.applications) if not name.startswith("_")
            and isinstance(getattr(keras.applications, name), types.ModuleType)
            and callable(getattr(getattr(keras.applications, name), "preprocess_input", None))]


def function(name: str) -> Callable[[Any], Any]:
    """``keras.applications.<name>.preprocess_input`` (a name :func:`check` accepted)."""
    import keras

    return getattr(keras.applications, name).preprocess_input


def check(config: Config, index: int, graph: Any) -> str | None:
    """The preprocess name of ``models[index]`` once it is known to fit the model: a module of
    keras.applications, one float input, an output of the input's shape. Refused otherwise, in one line."""
    name = config.pipeline.models[index].preprocess
    if name is None:
        return None
    field_ = f"models[{index}].preprocess"
    known = modules()
    if name not in known:
        raise config.error(field_, f"keras.applications has no module {name!r} with a preprocess_input"
                                   f"{did_you_mean(name, known, allowed_list=True)}")
    inputs = _flat(graph.inputs)
    model = config.pipeline.models[index].name
    if len(inputs) != 1:
        raise config.error(field_, f"preprocess applies to a model with one image input; model {model!r} has inputs "
                                   f"{', '.join(repr(t.name) for t in inputs)}")
    tensor = inputs[0]
    read_by_embedding = any(info.class_name == "Embedding" and f"input:{tensor.name}" in info.inputs
                            for info in graph.layers)
    if "float" not in str(tensor.dtype) or read_by_embedding:
        raise config.error(field_, f"model {model!r} takes token ids or integers ({tensor.name!r}, {tensor.dtype}); "
                                   "preprocess_input is for images")
    _probe(config, field_, name, tuple(tensor.shape), model)
    return name


def _probe(config: Config, field_: str, name: str, shape: tuple[int | None, ...], model: str) -> None:
    """Run the function once on pixels of the input's shape: refuse one that fails or changes the shape
    (the 'caffe' modules keep 3 channels of 4, and fail on 1), and say when it leaves the pixels unchanged
    (convnext, efficientnet, efficientnet_v2, mobilenet_v3: those models scale inside)."""
    import tensorflow as tf

    sample = (1, *(2 if size is None else size for size in shape[1:]))
    pixels = np.random.default_rng(0).uniform(0, 255, sample).astype(np.float32)
    try:
        out = np.asarray(function(name)(tf.constant(pixels)))
    except Exception as exc:  # noqa: BLE001 - TensorFlow raises many types for a shape it cannot take
        raise config.error(field_, f"keras.applications.{name}.preprocess_input fails on the input of model "
                                   f"{model!r}, shape {shape}: {first_line(exc)}") from None
    if out.shape != pixels.shape:
        raise config.error(field_, f"keras.applications.{name}.preprocess_input turns the input of model {model!r} "
                                   f"from {sample[1:]} into {out.shape[1:]} per sample; it expects RGB images (3 "
                                   "channels on the last axis)")
    if np.array_equal(out, pixels):
        log.warning("model %s: keras.applications.%s.preprocess_input leaves pixels unchanged (such models scale "
                    "inside); %s has no effect", model, name, field_)


def _flat(structure: Any) -> list[Any]:
    import keras

    return keras.tree.flatten(structure)
