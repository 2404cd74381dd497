"""A model's layers as a flat list of nested paths, and the tap model that exposes them.

Keras 3 cannot wire ``inner.get_layer(...).output`` of a nested model to the
outer inputs (``ValueError: Output with path 0 is not connected to inputs``).
So the graph is *replayed*: starting from fresh inputs, every node of the
functional graph is called again in depth order, and every nested Functional or
Sequential model is replayed in place instead of being called as one layer.
Each layer's output is then a symbolic tensor of the outer graph, and one
:class:`keras.Model` can return all selected outputs at once. The replay reuses
the model's own layer objects, so the weights are shared, not copied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import keras
import tensorflow as tf
from keras.src.models.functional import Functional
from keras.src.models.sequential import Sequential

from deeprep_report.config.selectors import LayerSelector, is_pattern, matches
from deeprep_report.extract import subclassed
from deeprep_report.errors import did_you_mean

#: Layers whose output is a re-arrangement or subset of their input: they keep the input's activation.
PASS_THROUGH = (
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D",
    "GlobalMaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D", "Flatten", "Reshape",
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout", "GaussianNoise",
    "AlphaDropout", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D",
    "UpSampling1D", "UpSampling2D", "UpSampling3D", "Permute", "RepeatVector", "Identity",
    "ActivityRegularization", "Masking", "Concatenate",
)


@dataclass
class LayerInfo:
    """One layer of a model, addressed by its nested path (``encoder/conv1``)."""

    path: str
    name: str
    class_name: str
    output_shape: tuple[int | None, ...] | None
    params: int
    inputs: tuple[str, ...]
    activation: str | None
    reason: str | None = None  # why the layer cannot be captured; None when it can
    activation_inherited: bool = False  # the activation is the input's (pooling, reshape, dropout)
    tensor: Any = field(default=None, repr=False)
    layer_id: int = field(default=0, repr=False)
    layer: Any = field(default=None, repr=False)

    @property
    def capturable(self) -> bool:
        return self.reason is None

    def describe(self) -> dict[str, Any]:
        """JSON-ready row of the architecture table."""
        return {
            "path": self.path, "class_name": self.class_name,
            "output_shape": list(self.output_shape) if self.output_shape is not None else None,
            "params": self.params, "inputs": list(self.inputs), "activation": self.activation,
            "activation_inherited": self.activation_inherited, "capturable": self.capturable, "reason": self.reason,
        }


class SelectionError(Exception):
    """A ``layers:`` entry that resolves to nothing usable; ``index`` is its position in the list."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


class LayerGraph:
    """The replayed graph of a model: every layer in execution order, and the tap model builder."""

    def __init__(self, model: keras.Model, model_name: str) -> None:
        self.model = model
        self.model_name = model_name
        self.subclassed = subclassed.is_subclassed(model)
        structure = (subclassed.input_structure(model, model_name) if self.subclassed
                     else _input_structure(model, model_name))
        self.inputs = keras.tree.map_structure(
            lambda t: keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name), structure
        )
        self.input_names = [t.name for t in keras.tree.flatten(self.inputs)]
        self.containers: list[str] = []
        self._paths: dict[int, str] = {}
        if self.subclassed and not all(layer.built for layer in model._flatten_layers(include_self=False)):
            subclassed.build_like(model, self.inputs)  # built by build(shape) only: its sublayers' weights now
        self._trace()
        token_inputs = self._embedding_inputs() if self.subclassed else set()
        if token_inputs:  # token ids: trace again with integer inputs
            self.inputs = keras.tree.map_structure(
                lambda t: keras.Input(batch_shape=t.shape, dtype="int32" if t.name in token_inputs else t.dtype,
                                      name=t.name), self.inputs)
            self._trace()
        self._mark_shared()

    def _trace(self) -> None:
        self.layers: list[LayerInfo] = []
        self._producer: dict[int, str] = {id(t): f"input:{t.name}" for t in keras.tree.flatten(self.inputs)}
        self._calls: dict[int, int] = {}
        if not self.subclassed:
            _replay(self.model, self.inputs, "", self)
            return
        recorder = subclassed.trace(self.model, self.inputs, self)
        self._paths = recorder.paths
        for path, layer in recorder.uncalled():
            self._calls[id(layer)] = 1
            self.layers.append(LayerInfo(
                path=path, name=layer.name, class_name=type(layer).__name__, output_shape=None,
                params=_count_params(layer), inputs=(), activation=activation_name(layer),
                reason="not used by the model's call() for these inputs", layer_id=id(layer), layer=layer))

    def _embedding_inputs(self) -> set[str]:
        """Inputs read directly by an Embedding: token ids, integer-typed."""
        return {source[len("input:"):] for info in self.layers if info.class_name == "Embedding"
                for source in info.inputs if source.startswith("input:")}

    # -- replay bookkeeping --------------------------------------------------------------------
    def _record(self, path: str, layer: keras.layers.Layer, args: tuple, kwargs: dict, output: Any) -> None:
        self._calls[id(layer)] = self._calls.get(id(layer), 0) + 1
        sources = tuple(
            self._producer.get(id(t), "?") for t in keras.tree.flatten((args, kwargs)) if _is_tensor(t)
        )
        tensors = [t for t in keras.tree.flatten(output) if _is_tensor(t)]
        reason = _capture_problem(tensors)
        for tensor in tensors:
            self._producer[id(tensor)] = path
        tensor = tensors[0] if len(tensors) == 1 else None
        shape = tuple(tensor.shape) if tensor is not None else None
        activation, inherited = self._activation(layer, sources)
        self.layers.append(LayerInfo(
            path=path, name=layer.name, class_name=type(layer).__name__, output_shape=shape,
            params=_count_params(layer), inputs=sources, activation=activation, activation_inherited=inherited,
            reason=reason, tensor=tensor, layer_id=id(layer), layer=layer,
        ))

    def _activation(self, layer: keras.layers.Layer, sources: tuple[str, ...]) -> tuple[str | None, bool]:
        """(activation, whether it is inherited from the input of a pass-through layer)."""
        own = activation_name(layer)
        if own is not None and own != "linear":
            return own, False
        if type(layer).__name__ in PASS_THROUGH and sources:
            # a producer with several outputs (an LSTM's h and c) has no one activation to pass on
            known = {info.path: info.activation if info.tensor is not None else None for info in self.layers}
            inherited = {known.get(source) for source in sources}
            if len(inherited) == 1:
                value = inherited.pop()
                return value, value is not None
        return own, False

    def _mark_shared(self) -> None:
        seen: set[int] = set()
        kept = []
        for info in self.layers:
            layer_id = info.layer_id
            calls = self._calls[layer_id]
            if calls > 1:
                if layer_id in seen:
                    continue
                info.reason = f"called {calls} times in the graph (a shared layer has no single output)"
                info.tensor = None
            seen.add(layer_id)
            kept.append(info)
        self.layers = kept

    # -- public API ----------------------------------------------------------------------------
    def select(self, selectors: str | list[str | LayerSelector]) -> tuple[list[LayerInfo], list[LayerInfo]]:
        """Resolve a ``layers:`` value to (selected, skipped) in model order.

        ``'all'`` takes every capturable layer and lists the others as skipped. A
        list entry is an exact path, a layer name, a nested model's name (all its
        layers), a glob pattern or a ``{type, glob, case}`` mapping; names and patterns
        without ``/`` also match the last path component. An exact name that cannot be
        captured is an error; a pattern or mapping skips what it cannot capture.
        """
        if selectors == "all":
            chosen = [info for info in self.layers if info.capturable]
            skipped = [info for info in self.layers if not info.capturable]
        else:
            picked: set[str] = set()
            skipped_paths: set[str] = set()
            for index, selector in enumerate(selectors):
                matches = self._match(selector)
                if not matches:
                    raise SelectionError(index, self._no_match(selector))
                exact = not is_pattern(selector) and selector not in self.containers
                for info in matches:
                    if info.capturable:
                        picked.add(info.path)
                    elif exact:
                        raise SelectionError(index, f"layer {info.path!r} of model {self.model_name!r} cannot be "
                                                    f"captured: {info.reason}")
                    else:
                        skipped_paths.add(info.path)
            chosen = [info for info in self.layers if info.path in picked]
            skipped = [info for info in self.layers if info.path in skipped_paths - picked]
        if not chosen:
            raise SelectionError(0, f"no layer of model {self.model_name!r} can be captured")
        return chosen, skipped

    def _match(self, selector: str | LayerSelector) -> list[LayerInfo]:
        return [info for info in self.layers if matches(selector, info.path, info.class_name)]

    def _no_match(self, selector: str | LayerSelector) -> str:
        if isinstance(selector, LayerSelector):
            found = f"selector {selector.describe()} matches no layer in model {self.model_name!r}"
            if selector.type is None:
                return found
            return found + f"; its layer types: {', '.join(sorted({info.class_name for info in self.layers}))}"
        if is_pattern(selector):
            return f"pattern {selector!r} matches no layer in model {self.model_name!r}"
        names = [info.path for info in self.layers] + [info.name for info in self.layers]
        return f"no layer {selector!r} in model {self.model_name!r}{did_you_mean(selector, names)}"

    def run(self, inputs: Any, paths: list[str]) -> dict[str, Any]:
        """The outputs ``{path: tensor}`` of the given layers for real ``inputs`` (structured like the model's),
        by replaying the graph again: unlike one flat Keras model of all the outputs, this works when nested blocks reuse a layer name
        (Keras refuses two operations of one name in one flat model)."""
        capture = _Capture(set(paths))
        if self.subclassed:
            subclassed.call_recorded(self.model, inputs, subclassed.Recorder(self.model, dict(self._paths), capture))
        else:
            _replay(self.model, inputs, "", capture)
        return {path: capture.outputs[path] for path in paths}



class _Capture:
    """Stands in for the graph while :meth:`LayerGraph.run` replays it on real tensors: keeps selected outputs."""

    def __init__(self, paths: set[str]) -> None:
        self.paths = paths
        self.outputs: dict[str, Any] = {}
        self.containers: list[str] = []

    def _record(self, path: str, layer: Any, args: tuple, kwargs: dict, output: Any) -> None:
        if path in self.paths:  # a layer returning a one-entry dict (a SavedModel's signature) is its one tensor
            tensors = keras.tree.flatten(output)
            self.outputs[path] = tensors[0] if len(tensors) == 1 else output


def _input_structure(model: keras.Model, model_name: str) -> Any:
    """The model's symbolic inputs in the structure its ``call`` expects (tensor, list or dict)."""
    graph = model._functional if isinstance(model, Sequential) else model
    try:
        return graph.input
    except (AttributeError, ValueError):
        raise ValueError(
            f"model {model_name!r} has no defined inputs; "
            "build it from keras.Input so its layers can be traced"
        ) from None


def _replay(model: keras.Model, inputs: Any, prefix: str, graph: LayerGraph) -> Any:
    """Run ``model``'s graph on symbolic ``inputs``, recording every layer call under ``prefix``."""
    if isinstance(model, Sequential):
        if model._functional is not None:
            return _replay(model._functional, inputs, prefix, graph)
        output = inputs
        for layer in model.layers:
            output = _call(layer, (output,), {}, prefix, graph)
        return output
    if not isinstance(model, Functional):
        return _call(model, (inputs,), {}, prefix, graph)

    def operation_fn(operation: Any) -> Any:
        return lambda *args, **kwargs: _call(operation, args, kwargs, prefix, graph)

    return model._run_through_graph(inputs, operation_fn=operation_fn)


def _call(operation: Any, args: tuple, kwargs: dict, prefix: str, graph: LayerGraph) -> Any:
    if isinstance(operation, (Functional, Sequential)):
        path = prefix + operation.name
        graph.containers.append(path)
        nested_inputs = args[0] if len(args) == 1 else list(args)
        return _replay(operation, nested_inputs, path + "/", graph)
    output = operation(*args, **kwargs)
    if isinstance(operation, keras.layers.Layer):
        graph._record(prefix + operation.name, operation, args, kwargs, output)  # graph: a LayerGraph or _Capture
    return output


def _is_tensor(value: Any) -> bool:
    """A symbolic tensor: Keras's (replayed graphs) or TensorFlow's (traced subclassed models)."""
    return isinstance(value, (keras.KerasTensor, tf.Tensor))


def _capture_problem(tensors: list[Any]) -> str | None:
    if len(tensors) != 1:
        return f"returns {len(tensors)} tensors; only single-output layers are captured"
    tensor = tensors[0]
    if len(tensor.shape) == 0:
        return "output has no batch axis"
    if not any(kind in str(tensor.dtype) for kind in ("float", "int", "bool")):
        return f"output dtype {tensor.dtype} is not numeric"
    return None


def _count_params(layer: keras.layers.Layer) -> int:
    try:
        return int(layer.count_params())
    except ValueError:  # an unbuilt layer has no weights yet
        return 0


def activation_name(layer: keras.layers.Layer) -> str | None:
    """The activation a layer applies last, as a lowercase name (``relu``, ``softmax``...), if any."""
    kind = type(layer).__name__
    if kind == "TimeDistributed":  # the wrapped layer's output, frame by frame, is the wrapper's output
        return activation_name(layer.layer)
    if kind == "ReLU":
        if getattr(layer, "max_value", None) == 6:
            return "relu6"
        return "leaky_relu" if getattr(layer, "negative_slope", 0) else "relu"
    fixed = {"LeakyReLU": "leaky_relu", "ELU": "elu", "PReLU": "prelu", "Softmax": "softmax"}
    if kind in fixed:
        return fixed[kind]
    function = getattr(layer, "activation", None)
    if function is None or not _applies_activation_last(layer):
        return None
    name = getattr(function, "__name__", None) or type(function).__name__
    return str(name).lower()


def _applies_activation_last(layer: keras.layers.Layer) -> bool:
    """Keras's own layers apply their ``activation`` last; a layer from elsewhere (keras-hub's
    TransformerEncoder has a GELU inside, then a residual and a norm) only when it is a Dense, a
    convolution or an Activation underneath."""
    if type(layer).__module__.startswith("keras."):
        return True
    from keras.src.layers.convolutional.base_conv import BaseConv

    return isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense, keras.layers.Activation, BaseConv))
