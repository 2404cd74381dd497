"""The docstring corpus and the text demo model: determinism, the split, safe-mode saving, real masking, replay."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import numpy as np
import pytest

from deeprep_report.sources import corpus, text_demo

if TYPE_CHECKING:
    import keras

LAYERS = ["embedding", "conv", "bigru", "pool", "dense", "output"]
SIGNATURE = re.compile(r"^[A-Za-z_][\w.]*\(")
#: Conv1D warns that it drops the embedding's mask whenever the model runs; the mask is passed on explicitly.


@pytest.fixture(scope="module")
def encoded():
    return text_demo.encoded_corpus()


@pytest.fixture(scope="module")
def model(encoded):
    """A lightly trained model (1 epoch, 200 texts): weights that are not just the initialisation."""
    import keras

    ids, _, labels, _, _ = encoded
    keras.utils.set_random_seed(0)
    built = text_demo.build_text_classifier(text_demo.vocabulary_size(), text_demo.SEQUENCE_LENGTH)
    built.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rows = np.random.default_rng(0).choice(len(ids), 200, replace=False)
    built.fit(ids[rows], labels[rows], batch_size=32, epochs=1, verbose=0)
    return built


def test_corpus_is_deterministic_balanced_and_clean():
    texts, labels, names = corpus.docstrings()
    again_texts, again_labels, again_names = corpus.docstrings()
    rebuilt = corpus._build.__wrapped__()  # a real second walk, not the in-process cache
    assert (texts, names) == (again_texts, again_names) and np.array_equal(labels, again_labels)
    assert rebuilt == (tuple(texts), tuple(labels.tolist()), tuple(names))
    assert names == ["matplotlib", "numpy", "scikit-learn", "scipy"]
    assert labels.dtype == np.int64 and len(labels) == len(texts)
    counts = np.bincount(labels, minlength=4)
    assert counts.min() >= 300 and counts.max() <= corpus.PER_CLASS, counts
    assert len(set(texts)) == len(texts)
    assert not [text for text in texts if SIGNATURE.match(text)]
    assert all(len(text) >= corpus.MIN_CHARS and text == " ".join(text.split()) for text in texts)
    source = corpus.corpus_source()
    assert source.startswith("builtin:docstrings") and "numpy 2" in source and "scikit-learn" in source


def test_summary_skips_signatures_sections_and_short_texts():
    ufunc = "add(x1, x2, /, out=None, *, where=True)\n\nAdd arguments   element-wise,\nlike ``+``.\n\nParameters\n---"
    assert corpus.summary(ufunc) == "Add arguments element-wise, like ``+``."
    assert corpus.summary("Parameters\n----------\nx : int") is None
    assert corpus.summary("Plot a bar.\n\nA much longer paragraph that is not the summary.") is None
    assert corpus.summary(".. deprecated:: 1.0\n\nCompute the thing the old way.") == "Compute the thing the old way."
    assert corpus.summary(None) is None


def test_split_is_stratified_disjoint_and_fixed():
    _, labels, _ = corpus.docstrings()
    train, test = corpus.split(labels)
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(len(labels)))
    assert not set(train) & set(test)
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
    share = np.bincount(labels[test], minlength=4) / np.bincount(labels, minlength=4)
    assert np.allclose(share, corpus.TEST_FRACTION, atol=0.01), share
    again_train, again_test = corpus.split(labels)
    assert np.array_equal(train, again_train) and np.array_equal(test, again_test)


def test_encoded_corpus_is_packed_bert_wordpiece(encoded):
    ids, mask, labels, names, texts = encoded
    assert ids.shape == mask.shape == (len(texts), text_demo.SEQUENCE_LENGTH) and ids.dtype == np.int32
    assert mask.dtype == bool and np.array_equal(mask, ids != 0)  # pad id 0 is exactly the padding
    assert np.all(ids[:, 0] == 101)  # [CLS]
    assert np.all(mask[:, :-1] >= mask[:, 1:])  # padded at the end only
    assert names == corpus.docstrings()[2] and len(labels) == len(texts)
    assert text_demo.encoded_corpus()[0] is ids  # tokenised once per process


def test_model_round_trips_through_keras_file_in_safe_mode(model, encoded, tmp_path):
    import keras

    path = tmp_path / "text_demo.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False, safe_mode=True)
    assert not [layer for layer in loaded.layers if type(layer).__name__ == "Lambda"]
    assert [layer.name for layer in loaded.layers][1:] == LAYERS
    ids = encoded[0][:64]
    np.testing.assert_allclose(np.asarray(loaded(ids)), np.asarray(model(ids)), rtol=0, atol=1e-7)


def _length_gap(short: keras.Model, long: keras.Model, ids: np.ndarray) -> float:
    """Largest change of the predictions when the same texts get a longer padded tail."""
    padded = np.zeros((len(ids), long.input.shape[1]), dtype=np.int32)
    padded[:, : ids.shape[1]] = ids
    return float(np.max(np.abs(np.asarray(short(ids)) - np.asarray(long(padded)))))


def _without_mask(model: keras.Model, length: int, last: str = "output") -> keras.Model:
    """Copies of the same layers and weights wired without the explicit mask (Conv1D drops the embedding's own)."""
    import keras

    ids = keras.Input(shape=(length,), dtype="int32")
    hidden = ids
    for name in LAYERS[: LAYERS.index(last) + 1]:
        layer = model.get_layer(name)
        copy = type(layer).from_config(layer.get_config())
        hidden = copy(hidden)
        copy.set_weights(layer.get_weights())
    return keras.Model(ids, hidden)


def _upto(model: keras.Model, name: str) -> keras.Model:
    import keras

    return keras.Model(model.input, model.get_layer(name).output)


def test_masking_is_real_predictions_ignore_the_padded_tail(model, encoded):
    ids = encoded[0][:64]
    length = text_demo.SEQUENCE_LENGTH
    longer = text_demo.build_text_classifier(text_demo.vocabulary_size(), 2 * length)
    longer.set_weights(model.get_weights())
    assert _length_gap(model, longer, ids) < 1e-5
    assert _length_gap(_upto(model, "pool"), _upto(longer, "pool"), ids) < 1e-5
    # The check has teeth: the same weights without the mask run the GRU over the padding and average it in.
    assert _length_gap(_without_mask(model, length), _without_mask(model, 2 * length), ids) > 1e-3
    pooled_gap = _length_gap(_without_mask(model, length, "pool"), _without_mask(model, 2 * length, "pool"), ids)
    assert pooled_gap > 0.1 * float(np.max(np.abs(np.asarray(_upto(model, "pool")(ids)))))


def test_layer_graph_replays_the_model_and_taps_its_own_outputs(model, encoded):
    import keras

    from deeprep_report.extract.graph import LayerGraph

    graph = LayerGraph(model, "text_demo")
    assert [info.path for info in graph.layers] == LAYERS
    assert all(info.capturable for info in graph.layers)
    assert graph.input_names == ["token_ids"]
    ids = encoded[0][:48]
    taps = graph.run(ids, LAYERS)
    for name in LAYERS:
        own = keras.Model(model.input, model.get_layer(name).output)(ids)
        np.testing.assert_allclose(np.asarray(taps[name]), np.asarray(own), rtol=0, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(np.asarray(taps["output"]), np.asarray(model(ids)), rtol=0, atol=1e-6)


def test_train_text_classifier_saves_atomically_with_its_meta(tmp_path):
    import keras

    path = tmp_path / "cache" / "text_demo.keras"
    accuracy = text_demo.train_text_classifier(path, epochs=1)
    meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    assert meta["test_accuracy"] == pytest.approx(accuracy) and 0.25 < accuracy <= 1
    assert {"tfidf_baseline_accuracy", "epochs", "seed", "train_samples", "test_samples", "seconds",
            "text_demo_version", "sequence_length", "vocabulary_size"} <= set(meta)
    assert meta["epochs"] == 1 and meta["train_samples"] + meta["test_samples"] == len(corpus.docstrings()[0])
    assert sorted(p.name for p in path.parent.iterdir()) == ["text_demo.json", "text_demo.keras"]
    loaded = keras.saving.load_model(path, compile=False, safe_mode=True)
    assert getattr(loaded, "optimizer", None) is None  # saved for inference only, without Adam's state


def test_text_classifier_path_trains_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPREP_CACHE_DIR", str(tmp_path))
    calls = []

    def fake_train(path, epochs=text_demo.EPOCHS, seed=0):
        calls.append(path)
        path.write_bytes(b"model")
        return 1.0

    monkeypatch.setattr(text_demo, "train_text_classifier", fake_train)
    first, second = text_demo.text_classifier_path(), text_demo.text_classifier_path()
    assert first == second == tmp_path / f"text_demo-v{text_demo.TEXT_DEMO_VERSION}.keras"
    assert calls == [first]
