"""Subclassed models: the sublayers that ``call()`` uses, captured while TensorFlow traces it.

A ``keras.Model`` subclass has no graph to replay, only Python code. What it
does have is sublayers held as attributes, and each is called through
``Layer.__call__``. While a trace is recorded, that method is wrapped so every
sublayer call reports (layer, inputs, output) to the recorder; the outputs are
tensors of the traced function, so the same mechanism serves the structural
trace (shapes, inputs, activations) and the compiled forward pass (the selected
outputs). Sublayers are named by their attribute path (``blocks/0/dense``),
which is unique where layer names are not; a sublayer that ``call()`` never
uses is listed with that reason.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator

import keras
from keras.src.layers.layer import Layer
from keras.src.models.functional import Functional
from keras.src.models.sequential import Sequential

from deeprep_report.tf_runtime import graph_safe_names

_state = threading.local()  # the recorder of the trace in progress on this thread
_original_call = Layer.__call__
_installed = 0
_lock = threading.Lock()


def is_subclassed(model: keras.Model) -> bool:
    """A model whose structure is only its ``call()`` code (neither Functional nor Sequential)."""
    return not isinstance(model, (Functional, Sequential))


def input_structure(model: keras.Model, model_name: str) -> Any:
    """Symbolic inputs from the shapes the model was built or first called with (batch axis left free)."""
    shapes = getattr(model, "_build_shapes_dict", None)
    if not shapes:
        raise ValueError(f"model {model_name!r} is a subclassed model that was never built or called, so its input "
                         "shape is unknown; call it once on a batch (or model.build(shape)) before returning it")
    if len(shapes) != 1:
        raise ValueError(f"model {model_name!r}: call() takes {len(shapes)} tensor arguments ({', '.join(shapes)}); "
                         "only one argument (a tensor, list or dict of tensors) can be fed from a dataset")
    shape = next(iter(shapes.values()))

    def make(value: Any, name: str) -> Any:
        if _is_shape(value):
            return keras.Input(batch_shape=(None, *tuple(value)[1:]), name=name)
        if isinstance(value, dict):
            return {key: make(item, str(key)) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [make(item, f"{name}_{i}") for i, item in enumerate(value)]
        raise ValueError(f"model {model_name!r}: cannot read the input shape {value!r} it was built with")

    return make(shape, "input")


def attribute_paths(model: keras.Model) -> dict[int, str]:
    """``{id(layer): attribute path}`` for every sublayer reachable from the model's public attributes; a nested
    Functional or Sequential model's layers are addressed by their names under it."""
    paths: dict[int, str] = {}

    def walk(value: Any, path: str) -> None:
        if isinstance(value, Layer):
            if id(value) in paths or value is model:
                return
            paths[id(value)] = path
            if isinstance(value, (Functional, Sequential)):
                for layer in value.layers:
                    walk(layer, f"{path}/{layer.name}")
            else:
                visit(value, path + "/")
        elif isinstance(value, (list, tuple)):
            for position, item in enumerate(value):
                walk(item, f"{path}/{position}")
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}/{key}")

    def visit(owner: Any, prefix: str) -> None:
        for attr, value in vars(owner).items():
            if not attr.startswith("_"):
                walk(value, prefix + attr)

    visit(model, "")
    return paths


class Recorder:
    """Forwards each sublayer call of ``model`` to ``target._record(path, layer, args, kwargs, output)`` (a
    :class:`~deeprep_report.extract.graph.LayerGraph` while tracing, a capture while running)."""

    def __init__(self, model: keras.Model, paths: dict[int, str], target: Any) -> None:
        self.model = model
        self.paths = paths
        self.target = target
        self.called: set[int] = set()

    def seen(self, layer: Layer, args: tuple, kwargs: dict, output: Any) -> None:
        if layer is self.model:
            return
        path = self.paths.get(id(layer))
        if path is None:  # a layer not held as an attribute (made inside call): known by its name only
            path = self.paths[id(layer)] = layer.name
        self.called.add(id(layer))
        self.target._record(path, layer, args, kwargs, output)

    def uncalled(self) -> list[tuple[str, Layer]]:
        """(path, layer) of sublayers ``call()`` never used, outermost only (their children are implied)."""
        by_id = {id(layer): layer for layer in _all_layers(self.model)}
        found = [(path, by_id[key]) for key, path in self.paths.items() if key not in self.called and key in by_id]
        outer = [path for path, _ in found]
        return [(path, layer) for path, layer in found
                if not any(path.startswith(other + "/") for other in outer if other != path)]


def call_recorded(model: keras.Model, inputs: Any, recorder: Recorder) -> Any:
    """``model(inputs)`` with every sublayer call reported to ``recorder``."""
    with _recording(recorder):
        return model(inputs)


def trace(model: keras.Model, inputs: Any, target: Any) -> Recorder:
    """Trace ``model`` once on tensors shaped like ``inputs`` (keras.Input structure), recording into ``target``;
    the graph inputs are registered as ``input:<name>`` so sublayers reading them know their source."""
    import tensorflow as tf

    specs = keras.tree.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype, name=t.name), inputs)
    recorder = Recorder(model, attribute_paths(model), target)

    def traced(batch: Any) -> Any:
        for tensor, spec in zip(keras.tree.flatten(batch), keras.tree.flatten(inputs)):
            target._producer[id(tensor)] = f"input:{spec.name}"
        return call_recorded(model, batch, recorder)

    with graph_safe_names():
        tf.function(traced, autograph=False).get_concrete_function(specs)
    return recorder


def build_like(model: keras.Model, inputs: Any) -> None:
    """Create a fresh (unbuilt) subclassed model's weights by calling it once on zeros shaped like ``inputs``."""
    import numpy as np

    model(keras.tree.map_structure(lambda t: np.zeros((1, *t.shape[1:]), t.dtype), inputs))


@contextlib.contextmanager
def _recording(recorder: Recorder) -> Iterator[None]:
    global _installed
    with _lock:
        if _installed == 0:
            Layer.__call__ = _recorded_call
        _installed += 1
    previous = getattr(_state, "recorder", None)
    _state.recorder = recorder
    try:
        yield
    finally:
        _state.recorder = previous
        with _lock:
            _installed -= 1
            if _installed == 0:
                Layer.__call__ = _original_call


def _recorded_call(self: Layer, *args: Any, **kwargs: Any) -> Any:
    output = _original_call(self, *args, **kwargs)
    recorder = getattr(_state, "recorder", None)
    if recorder is not None:
        recorder.seen(self, args, kwargs, output)
    return output


def _all_layers(model: keras.Model) -> list[Layer]:
    return list(model._flatten_layers(include_self=False, recursive=True))


def _is_shape(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(d is None or isinstance(d, int) for d in value) and bool(value)
