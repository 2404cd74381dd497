"""Representation metrics against oracles: published values, mathematical properties, known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from deeprep_report.analysis import cka, classes, geometry, interpret, probes


@pytest.fixture
def reference_pair() -> tuple[np.ndarray, np.ndarray]:
    """The example of the CKA paper's reference notebook."""
    np.random.seed(1337)
    x = np.random.randn(100, 10)
    y = x + np.random.randn(100, 10)
    return x, y


# -- CKA -------------------------------------------------------------------------------------------------------

def test_cka_matches_the_reference_notebook(reference_pair):
    x, y = reference_pair
    assert cka.feature_cka(x, y) == pytest.approx(0.55761, abs=5e-6)
    assert cka.gram_cka(x @ x.T, y @ y.T) == pytest.approx(0.55761, abs=5e-6)
    assert cka.feature_cka(x, y, debiased=True) == pytest.approx(0.51346, abs=5e-6)
    assert cka.gram_cka(x @ x.T, y @ y.T, debiased=True) == pytest.approx(0.51346, abs=5e-6)
    assert cka.gram_cka(cka.rbf_gram(x, 0.5), cka.rbf_gram(y, 0.5)) == pytest.approx(0.65483, abs=5e-6)


def test_cka_properties(reference_pair):
    x, y = reference_pair
    rng = np.random.default_rng(0)
    rotation, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    base = cka.linear_cka(x, y)
    assert cka.linear_cka(x, x) == pytest.approx(1.0)
    assert cka.linear_cka(y, x) == pytest.approx(base)
    assert 0.0 <= base <= 1.0
    assert cka.linear_cka(x @ rotation, y) == pytest.approx(base)      # orthogonal transform
    assert cka.linear_cka(3.7 * x, y) == pytest.approx(base)           # isotropic scaling
    assert cka.linear_cka(x + 5.0, y - 2.0) == pytest.approx(base)     # translation
    stretched = x * np.linspace(0.1, 10, 10)                            # per-feature scaling changes it
    assert abs(cka.linear_cka(stretched, y) - base) > 0.01
    a, b = rng.normal(size=200), rng.normal(size=200)
    b = a + 0.7 * b
    assert cka.linear_cka(a[:, None], b[:, None]) == pytest.approx(np.corrcoef(a, b)[0, 1] ** 2)


def test_biased_floor_and_debiased_zero_for_independent_features():
    rng = np.random.default_rng(1)
    n, p, q = 500, 50, 80
    x, y = rng.normal(size=(n, p)), rng.normal(size=(n, q))
    expected = math.sqrt(p * q / ((n + p) * (n + q)))
    assert cka.linear_cka(x, y) == pytest.approx(expected, rel=0.1)
    assert abs(cka.linear_cka(x, y, debiased=True)) < 0.02


def test_feature_and_gram_forms_agree_when_units_exceed_samples():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(30, 50)), rng.normal(size=(30, 8))
    y = np.hstack([y, x[:, :4]])
    for debiased in (False, True):
        assert cka.linear_cka(x, y, debiased) == pytest.approx(cka.feature_cka(x, y, debiased))


def test_minibatch_cka_does_not_depend_on_batch_size():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 20))
    y = np.tanh(x @ rng.normal(size=(20, 30))) + 0.5 * rng.normal(size=(3000, 30))
    full = cka.feature_cka(x, y, debiased=True)
    estimates = [cka.minibatch_cka_matrix([x, y], size)[0, 1] for size in (250, 500, 1000, 3000)]
    assert max(estimates) - min(estimates) < 0.01
    assert estimates[-1] == pytest.approx(full)


def test_minibatch_cka_reads_one_batch_of_each_layer_at_a_time():
    """Readers of stored views give the in-memory answer, and no read is larger than a batch (memory ∝ b, not N)."""
    from deeprep_report.analysis.features import Rows

    rng = np.random.default_rng(5)
    layers = [rng.normal(size=(1100, 6)), rng.normal(size=(1100, 9))]
    layers.append(layers[0] @ np.linalg.qr(rng.normal(size=(6, 6)))[0])  # a rotation: CKA 1
    reads: list[int] = []

    def reader(x: np.ndarray) -> Rows:
        def read(rows):
            reads.append(len(x[rows]))
            return x[rows]
        return Rows(read, len(x), x.shape[1])

    expected = cka.minibatch_cka_matrix(layers, 300, seed=7)
    np.testing.assert_allclose(cka.minibatch_cka_matrix([reader(x) for x in layers], 300, seed=7), expected,
                               rtol=1e-12)
    assert max(reads) == 300 and sum(reads) == 3 * 1100  # each row of each layer read once, a batch at a time
    assert expected[0, 2] == pytest.approx(1.0) and abs(expected[0, 1]) < 0.1


def test_cka_matrix_is_symmetric_with_unit_diagonal():
    rng = np.random.default_rng(4)
    layers = [rng.normal(size=(80, d)) for d in (3, 7, 12)]
    matrix = cka.cka_matrix(layers, debiased=False)
    np.testing.assert_allclose(matrix, matrix.T)
    np.testing.assert_allclose(np.diag(matrix), 1.0)
    assert cka.choose_estimator("auto", 1000, 800) == "debiased"
    assert cka.choose_estimator("auto", 100000, 800) == "biased"
    assert cka.choose_estimator("biased", 10, 800) == "biased"


# -- geometry --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dimension", [2, 5, 10])
def test_twonn_recovers_gaussian_dimension(dimension):
    points = np.random.default_rng(dimension).normal(size=(4000, dimension))
    estimate, _ = geometry.twonn_repeated(points, 1500, 5, 0.1, seed=0)
    assert estimate == pytest.approx(dimension, rel=0.1)


def test_twonn_of_a_circle_in_50_dimensions_is_one():
    rng = np.random.default_rng(5)
    angles = rng.uniform(0, 2 * np.pi, 2000)
    basis, _ = np.linalg.qr(rng.normal(size=(50, 2)))
    circle = np.column_stack([np.cos(angles), np.sin(angles)]) @ basis.T
    assert geometry.twonn_repeated(circle, 1500, 3, 0.1, seed=0)[0] == pytest.approx(1.0, rel=0.1)


def test_twonn_ignores_duplicates():
    rng = np.random.default_rng(6)
    points = rng.normal(size=(800, 3))
    doubled = np.vstack([points, points[:200]])
    assert geometry.twonn(doubled) == pytest.approx(geometry.twonn(points), rel=0.15)


def test_effective_rank_participation_ratio_and_components():
    assert geometry.effective_rank([3, 2, 1]) == pytest.approx(2.7495, abs=1e-4)
    assert geometry.effective_rank([2.0] * 7) == pytest.approx(7.0)
    assert geometry.participation_ratio([3, 2, 1]) == pytest.approx(2.0)
    assert geometry.components_for([3, 2, 1], 0.90) == 2  # 9/14, 13/14 ≥ 0.9
    assert geometry.components_for([3, 2, 1], 0.99) == 3
    points = np.random.default_rng(7).normal(size=(300, 4)) * [5, 1, 1, 0.1]
    np.testing.assert_allclose(geometry.spectrum(points), np.linalg.svd(points - points.mean(0), compute_uv=False))


# -- class structure -------------------------------------------------------------------------------------------

def test_selectivity_extremes():
    labels = np.repeat([0, 1, 2], 10)
    one_class = np.where(labels == 1, 2.0, 0.0)
    constant = np.full(30, 0.7)
    mixed = np.where(labels == 0, 3.0, 1.0)
    index = classes.selectivity(np.column_stack([one_class, constant, mixed]), labels)
    assert index[0] == pytest.approx(1.0) and index[1] == pytest.approx(0.0, abs=1e-12)
    assert index[2] == pytest.approx(0.5)


def test_nearest_centroid_and_silhouette_on_separated_classes():
    rng = np.random.default_rng(8)
    labels = np.repeat([0, 1, 2], 100)
    centres = np.array([[0, 0], [10, 0], [0, 10]])
    points = centres[labels] + rng.normal(size=(300, 2))
    train, test = probes.split(labels, 0.2, seed=0)
    assert classes.nearest_centroid_accuracy(points, labels, train, test) == 1.0
    assert classes.silhouette(points, labels, 300, seed=0) > 0.8
    assert abs(classes.silhouette(rng.normal(size=(300, 2)), labels, 300, seed=0)) < 0.1


def test_projection_is_deterministic_and_spans_the_top_components():
    points = np.random.default_rng(9).normal(size=(200, 5)) * [10, 3, 1, 1, 1]
    first = classes.projection_2d(points, "pca", seed=0)
    assert first.shape == (200, 2)
    np.testing.assert_array_equal(first, classes.projection_2d(points, "pca", seed=0))
    assert first[:, 0].var() > first[:, 1].var() > 1.0


# -- probes ----------------------------------------------------------------------------------------------------

def probe(features: np.ndarray, labels: np.ndarray, seed: int = 0) -> probes.ProbeResult:
    train, test = probes.split(labels, 0.2, seed)
    return probes.linear_probe(features, labels, train, test, penalties=PENALTIES, bootstrap=500, seed=seed)


PENALTIES = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0]


def test_probe_on_separable_labels_is_perfect_and_on_shuffled_labels_is_chance():
    rng = np.random.default_rng(10)
    labels = np.repeat(np.arange(4), 150)
    features = rng.normal(size=(600, 12))
    features[np.arange(600), labels] += 6.0  # each class owns one direction, with a wide margin
    separable = probe(features, labels)
    assert separable.accuracy >= 0.99 and separable.low <= separable.accuracy <= separable.high
    shuffled = probe(features, rng.permutation(labels))
    assert shuffled.chance == pytest.approx(0.25, abs=0.01)
    assert abs(shuffled.accuracy - shuffled.chance) < 0.1


def test_probe_never_looks_at_the_test_split(monkeypatch):
    """The statistics and the GCV choice see only training rows: changing test features cannot change the penalty."""
    rng = np.random.default_rng(11)
    labels = np.repeat(np.arange(3), 100)
    features = rng.normal(size=(300, 40)) + labels[:, None] * 0.3
    train, test = probes.split(labels, 0.2, seed=0)
    corrupted = features.copy()
    corrupted[test] *= 1000.0
    kwargs = dict(penalties=PENALTIES, bootstrap=0, seed=0)
    a = probes.linear_probe(features, labels, train, test, **kwargs)
    b = probes.linear_probe(corrupted, labels, train, test, **kwargs)
    assert a.penalty == b.penalty and a.dims == b.dims == 40 and a.accuracy != b.accuracy


def test_split_is_stratified_and_seeded():
    labels = np.repeat([0, 1], [80, 20])
    train, test = probes.split(labels, 0.2, seed=3)
    assert len(test) == 20 and (labels[test] == 1).sum() == 4
    np.testing.assert_array_equal(test, probes.split(labels, 0.2, seed=3)[1])


# -- interpretation rules --------------------------------------------------------------------------------------

def test_profile_shapes():
    assert interpret.shape([0.4, 0.6, 0.9]) == "rising"
    assert interpret.shape([0.9, 0.6, 0.4]) == "falling"
    assert interpret.shape([0.8, 0.82, 0.79]) == "flat"
    assert interpret.shape([5.0, 12.0, 6.0], relative=True) == "peaked"


def test_sentences_follow_the_data_not_the_model():
    names = ["input", "conv1", "pool1", "conv2", "dense"]
    rising = interpret.probes(names, [0.9, 0.41, 0.5, 0.91, 0.98], 0.1)
    flat = interpret.probes(names, [0.9, 0.62, 0.6, 0.61, 0.63], 0.1)
    falling = interpret.probes(names, [0.9, 0.9, 0.7, 0.5, 0.3], 0.1)
    assert rising.startswith("Probe accuracy rises from 0.41 at conv1 to 0.98 at dense")
    assert "largest gain is between pool1 and conv2 (+0.41)" in rising and "input pixels themselves give 0.90" in rising
    assert flat.startswith("Probe accuracy stays between 0.60 and 0.63") and "does not change" in flat
    assert falling.startswith("Probe accuracy falls from 0.90 at conv1 to 0.30 at dense")
    assert len({rising.split(":")[0].split(" from")[0], flat.split(" between")[0], falling.split(" from")[0]}) == 3
    hunch = interpret.dimension(names, [20.0, 30.0, 45.0, 25.0, 8.0])
    assert "peak of 45.0 at pool1" in hunch and "hunchback" in hunch
    assert "no compression" in interpret.dimension(names, [10.0, 10.5, 10.2, 10.4, 10.1])
    assert "later layers most" in interpret.training_change(names, [1.0, 0.95, 0.9, 0.5, 0.2])
    assert "earlier layers most" in interpret.training_change(names, [1.0, 0.2, 0.6, 0.8, 0.9])
    assert interpret.probes(["conv1"], [0.5], None) is None


def test_demo_analysis_tells_the_expected_story(demo_run):
    """The trained digits CNN: decodable late layers, better than the input and than random weights."""
    import json

    summary = json.loads((demo_run[0] / "summary.json").read_text())
    trained = next(p for p in summary["pairs"] if p["model"] == "digits_cnn")
    random = next(p for p in summary["pairs"] if p["model"] == "digits_cnn@random")
    analysis = trained["analysis"]
    names = analysis["layers"]
    accuracy = {name: p["accuracy"] for name, p in zip(names, analysis["probe"])}
    assert names[0] == "input" and analysis["cka"]["estimator"] == "debiased"
    assert accuracy["dense_1"] >= 0.9 and accuracy["dense_1"] > accuracy["input"]
    model_layers = [accuracy[name] for name in names[1:]]
    assert spearmanr(range(len(model_layers)), model_layers).statistic >= 0.7
    random_accuracy = dict(zip(random["analysis"]["layers"], (p["accuracy"] for p in random["analysis"]["probe"])))
    assert accuracy["dense_2"] > random_accuracy["dense_2"]
    assert analysis["baseline"]["model"] == "digits_cnn@random"
    assert analysis["baseline"]["cka_with_trained"][0] == pytest.approx(1.0)  # the same input
    assert analysis["interpretation"] and all(isinstance(s, str) for s in analysis["interpretation"])
    total = sum(analysis["seconds"].values()) + sum(random["analysis"]["seconds"].values())
    assert total > 0


def test_flatten_and_dropout_have_cka_one_with_their_input(demo_run):
    """Full maps of pool2 flattened vs flatten, and flatten vs inference-mode dropout: the same representation."""
    import h5py

    with h5py.File(demo_run[0] / "activations.h5") as store:
        layers = store["pairs/digits_cnn/digits/layers"]
        pool2 = layers["pool2/maps"][()].reshape(len(layers["pool2/maps"]), -1)
        flatten = layers["flatten/pooled"][: len(pool2)]
        dropout = layers["dropout/pooled"][: len(pool2)]
    assert cka.linear_cka(pool2, flatten) == pytest.approx(1.0, abs=1e-6)
    assert cka.linear_cka(flatten, dropout) == pytest.approx(1.0, abs=1e-6)
