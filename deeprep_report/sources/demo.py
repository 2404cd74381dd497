"""The offline demo: scikit-learn's digits upsampled to 28x28x1 and a small CNN trained on them.

Nothing is downloaded: the images ship inside scikit-learn, and the model is
trained here on first use (about 15 s on 2 cores), then cached as a ``.keras``
file so later runs load it. The cache key includes :data:`DEMO_VERSION`; bump
it whenever the data, the architecture or the training recipe changes.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("deeprep")

DEMO_VERSION = 2
#: Epochs of the early checkpoint (the "released" model of the comparison example) and of the final one.
EARLY_EPOCHS, FINAL_EPOCHS = 3, 12
CHECKPOINTS = {"digits_cnn": "", "digits_cnn_early": "_early"}
TEST_FRACTION = 0.2
SPLIT_SEED = 0
_DIGIT_BOX = 20  # MNIST centres a 20x20 digit in a 28x28 frame


def digits() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 scikit-learn digits as (N, 28, 28, 1) float32 in [0, 1] and (N,) int64 labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.float64) / 16.0  # (N, 8, 8), values 0..16
    resize = _bilinear_matrix(8, _DIGIT_BOX)
    big = np.einsum("ij,njk,lk->nil", resize, images, resize)
    pad = (28 - _DIGIT_BOX) // 2
    framed = np.zeros((len(images), 28, 28), dtype=np.float64)
    framed[:, pad : pad + _DIGIT_BOX, pad : pad + _DIGIT_BOX] = big
    return np.clip(framed, 0.0, 1.0).astype(np.float32)[..., None], bunch.target.astype(np.int64)


def digits_mirrored(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A task the demo model was not trained on: the same digits, a seeded half of them mirrored left-right;
    label 1 when mirrored. Telling a mirrored 2 from a 2 needs spatial layout, which classification may discard."""
    x, _ = digits()
    mirrored = np.random.default_rng(seed).random(len(x)) < 0.5
    x[mirrored] = x[mirrored, :, ::-1]
    return x, mirrored.astype(np.int64)


def _bilinear_matrix(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) linear interpolation weights with pixel centres aligned (like PIL's bilinear)."""
    centres = (np.arange(size_out) + 0.5) * size_in / size_out - 0.5
    centres = np.clip(centres, 0, size_in - 1)
    low = np.floor(centres).astype(int)
    high = np.minimum(low + 1, size_in - 1)
    frac = centres - low
    matrix = np.zeros((size_out, size_in))
    matrix[np.arange(size_out), low] += 1 - frac
    matrix[np.arange(size_out), high] += frac
    return matrix


def split() -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the fixed, stratified train/test split the demo model is trained and scored on."""
    from sklearn.model_selection import train_test_split

    _, labels = digits()
    rows = np.arange(len(labels))
    train, test = train_test_split(rows, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels)
    return np.sort(train), np.sort(test)


def cache_dir() -> Path:
    """Where the trained demo model is cached: $DEEPREP_CACHE_DIR, else $XDG_CACHE_HOME/deeprep."""
    explicit = os.environ.get("DEEPREP_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "deeprep"


def digits_cnn_path(checkpoint: str = "digits_cnn") -> Path:
    """Path of a trained demo checkpoint (``digits_cnn`` or ``digits_cnn_early``), training both first if needed."""
    path = _checkpoint_path(checkpoint)
    if not path.is_file():
        train_digits_cnn(_checkpoint_path("digits_cnn"))
    return path


def _checkpoint_path(checkpoint: str) -> Path:
    return cache_dir() / f"digits_cnn{CHECKPOINTS[checkpoint]}-v{DEMO_VERSION}.keras"


def build_digits_cnn() -> "keras.Model":  # noqa: F821
    """The classic Keras MNIST convnet: conv -> pool -> conv -> pool -> dense."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1), name="image"),
            layers.Conv2D(16, 3, activation="relu", name="conv1"),
            layers.MaxPooling2D(2, name="pool1"),
            layers.Conv2D(32, 3, activation="relu", name="conv2"),
            layers.MaxPooling2D(2, name="pool2"),
            layers.Flatten(name="flatten"),
            layers.Dropout(0.3, name="dropout"),
            layers.Dense(64, activation="relu", name="dense_1"),
            layers.Dense(10, activation="softmax", name="dense_2"),
        ],
        name="digits_cnn",
    )


def train_digits_cnn(path: Path, epochs: int = FINAL_EPOCHS, seed: int = SPLIT_SEED) -> float:
    """Train the demo CNN on the fixed train split and save it atomically to ``path``; return test accuracy.

    The same training run also saves the checkpoint after ``EARLY_EPOCHS`` epochs
    beside it (``..._early``): two versions of one model for the comparison example.
    """
    import keras

    started = time.perf_counter()
    log.info("training the demo model digits_cnn (first run only; cached in %s)", path.parent)
    keras.utils.set_random_seed(seed)
    x, y = digits()
    train, test = split()
    model = build_digits_cnn()
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    path.parent.mkdir(parents=True, exist_ok=True)
    early = path.with_name(path.name.replace("digits_cnn", "digits_cnn_early"))
    model.fit(x[train], y[train], batch_size=32, epochs=EARLY_EPOCHS, verbose=0, shuffle=True)
    _save(model, early, x[test], y[test], EARLY_EPOCHS, len(train), seed)
    model.fit(x[train], y[train], batch_size=32, epochs=epochs - EARLY_EPOCHS, verbose=0, shuffle=True)
    accuracy = _save(model, path, x[test], y[test], epochs, len(train), seed)
    log.info("demo model trained in %.1f s: held-out accuracy %.3f on %d images",
             time.perf_counter() - started, accuracy, len(test))
    return accuracy


def _save(model: "keras.Model", path: Path, x_test: np.ndarray, y_test: np.ndarray, epochs: int,  # noqa: F821
          train_samples: int, seed: int) -> float:
    """Save a checkpoint and its held-out accuracy (temporary name, then rename)."""
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    meta = {"test_accuracy": float(accuracy), "train_samples": int(train_samples), "test_samples": int(len(y_test)),
            "epochs": epochs, "seed": seed, "demo_version": DEMO_VERSION}
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp.keras")
    model.save(temporary)
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return float(accuracy)
