"""Tiny models built inside the tests, one per graph shape the extractor must handle."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers


def sequential() -> keras.Model:
    return keras.Sequential([
        keras.Input((6, 6, 2), name="pixels"),
        layers.Conv2D(4, 3, activation="relu", name="conv"),
        layers.MaxPooling2D(2, name="pool"),
        layers.Flatten(name="flat"),
        layers.Dense(5, activation="tanh", name="hidden"),
        layers.Dense(3, activation="softmax", name="out"),
    ], name="seq")


def functional() -> keras.Model:
    x = keras.Input((6, 6, 2), name="pixels")
    a = layers.Conv2D(3, 3, padding="same", activation="relu", name="conv_a")(x)
    b = layers.Conv2D(3, 1, activation="sigmoid", name="conv_b")(x)
    merged = layers.Concatenate(name="merge")([a, b])
    pooled = layers.GlobalAveragePooling2D(name="gap")(merged)
    out = layers.Dense(2, name="logits")(pooled)
    return keras.Model(x, out, name="func")


def nested() -> keras.Model:
    """A Sequential inside a Functional inside a Functional."""
    block = keras.Sequential([keras.Input((6, 6, 4)), layers.Conv2D(4, 3, activation="relu", name="conv1"),
                              layers.Conv2D(5, 1, activation="relu", name="conv2")], name="block")
    inner_in = keras.Input((6, 6, 2))
    stem = layers.Conv2D(4, 1, padding="same", name="stem")(inner_in)
    encoder = keras.Model(inner_in, block(stem), name="encoder")
    x = keras.Input((6, 6, 2), name="pixels")
    features = encoder(x)
    out = layers.Dense(3, activation="softmax", name="head")(layers.Flatten(name="flat")(features))
    return keras.Model(x, out, name="nested")


def multi_input() -> keras.Model:
    image = keras.Input((6, 6, 2), name="image")
    meta = keras.Input((4,), name="meta")
    a = layers.Flatten(name="flat")(layers.Conv2D(2, 3, activation="relu", name="conv")(image))
    b = layers.Dense(3, activation="relu", name="meta_dense")(meta)
    joined = layers.Concatenate(name="join")([a, b])
    return keras.Model({"image": image, "meta": meta}, layers.Dense(2, name="out")(joined), name="multi")


def data(n: int = 37, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(n, 6, 6, 2)).astype(np.float32), "y": rng.integers(0, 3, n)}


def reference_outputs(model_name: str, model: keras.Model, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each layer's output computed by calling the layers by hand, eagerly (independent of the replay)."""
    get = model.get_layer
    if model_name == "sequential":
        out, h = {}, arrays["x"]
        for layer in model.layers:
            h = layer(h)
            out[layer.name] = h
    elif model_name == "functional":
        x = arrays["x"]
        a, b = get("conv_a")(x), get("conv_b")(x)
        merged = get("merge")([a, b])
        gap = get("gap")(merged)
        out = {"conv_a": a, "conv_b": b, "merge": merged, "gap": gap, "logits": get("logits")(gap)}
    elif model_name == "nested":
        encoder = get("encoder")
        block = encoder.get_layer("block")
        stem = encoder.get_layer("stem")(arrays["x"])
        c1 = block.get_layer("conv1")(stem)
        c2 = block.get_layer("conv2")(c1)
        flat = get("flat")(c2)
        out = {"encoder/stem": stem, "encoder/block/conv1": c1, "encoder/block/conv2": c2, "flat": flat,
               "head": get("head")(flat)}
    else:
        conv = get("conv")(arrays["image"])
        flat = get("flat")(conv)
        meta = get("meta_dense")(arrays["meta"])
        joined = get("join")([flat, meta])
        out = {"conv": conv, "flat": flat, "meta_dense": meta, "join": joined, "out": get("out")(joined)}
    return {key: np.asarray(value) for key, value in out.items()}
