"""An offline text corpus: the summaries of public functions' docstrings in numpy, scipy, scikit-learn and matplotlib.

Nothing is downloaded: the texts ship inside packages the tool already depends on.
Each sample is the first prose paragraph of one function's docstring (a leading
call-signature line, as numpy ufuncs and scipy.special functions have, is
skipped), labelled by the library that defines it. Guessing the library from one
sentence is a real but learnable task: a TF-IDF + logistic regression baseline
gets about 0.8, so a representation audit has something to find.

Modules are walked from a fixed list in a fixed order and names are sorted, so the
corpus depends only on the installed versions (recorded by :func:`corpus_source`).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import warnings
from typing import Any

import numpy as np

#: Label -> (import roots whose objects count as the library's own, modules walked in order).
#: Libraries are walked in dependency order, so an object re-exported downstream keeps its origin's label.
LIBRARIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "numpy": (("numpy",), (
        "numpy", "numpy.linalg", "numpy.fft", "numpy.random", "numpy.ma", "numpy.strings", "numpy.char",
        "numpy.lib.recfunctions", "numpy.lib.stride_tricks", "numpy.lib.scimath", "numpy.lib.format",
        "numpy.lib.array_utils", "numpy.polynomial.polynomial", "numpy.polynomial.chebyshev",
        "numpy.polynomial.legendre", "numpy.polynomial.hermite", "numpy.polynomial.hermite_e",
        "numpy.polynomial.laguerre", "numpy.testing", "numpy.rec", "numpy.ctypeslib", "numpy.matlib")),
    "scipy": (("scipy",), (
        "scipy.cluster.hierarchy", "scipy.cluster.vq", "scipy.constants", "scipy.differentiate", "scipy.fft",
        "scipy.fftpack", "scipy.integrate", "scipy.interpolate", "scipy.io", "scipy.linalg", "scipy.ndimage",
        "scipy.optimize", "scipy.signal", "scipy.signal.windows", "scipy.sparse", "scipy.sparse.linalg",
        "scipy.sparse.csgraph", "scipy.spatial", "scipy.spatial.distance", "scipy.special", "scipy.stats",
        "scipy.stats.mstats")),
    "scikit-learn": (("sklearn",), (
        "sklearn", "sklearn.base", "sklearn.calibration", "sklearn.cluster", "sklearn.compose", "sklearn.covariance",
        "sklearn.datasets", "sklearn.decomposition", "sklearn.discriminant_analysis", "sklearn.dummy",
        "sklearn.feature_extraction", "sklearn.feature_extraction.image", "sklearn.feature_extraction.text",
        "sklearn.feature_selection", "sklearn.gaussian_process.kernels", "sklearn.inspection", "sklearn.isotonic",
        "sklearn.kernel_approximation", "sklearn.kernel_ridge", "sklearn.linear_model", "sklearn.manifold",
        "sklearn.metrics", "sklearn.metrics.cluster", "sklearn.metrics.pairwise", "sklearn.model_selection",
        "sklearn.multiclass", "sklearn.multioutput", "sklearn.naive_bayes", "sklearn.neighbors", "sklearn.pipeline",
        "sklearn.preprocessing", "sklearn.random_projection", "sklearn.svm", "sklearn.tree", "sklearn.utils",
        "sklearn.utils.class_weight", "sklearn.utils.discovery", "sklearn.utils.estimator_checks",
        "sklearn.utils.extmath", "sklearn.utils.graph", "sklearn.utils.metaestimators", "sklearn.utils.multiclass",
        "sklearn.utils.murmurhash", "sklearn.utils.parallel", "sklearn.utils.random", "sklearn.utils.sparsefuncs",
        "sklearn.utils.sparsefuncs_fast", "sklearn.utils.validation")),
    "matplotlib": (("matplotlib", "mpl_toolkits"), (
        "matplotlib", "matplotlib.pyplot", "matplotlib.animation", "matplotlib.artist", "matplotlib.backend_bases",
        "matplotlib.backend_tools", "matplotlib.bezier", "matplotlib.cbook", "matplotlib.colorbar", "matplotlib.colors",
        "matplotlib.dates", "matplotlib.dviread", "matplotlib.figure", "matplotlib.font_manager", "matplotlib.hatch",
        "matplotlib.image", "matplotlib.layout_engine", "matplotlib.legend", "matplotlib.lines", "matplotlib.mathtext",
        "matplotlib.mlab", "matplotlib.offsetbox", "matplotlib.patches", "matplotlib.path", "matplotlib.projections",
        "matplotlib.rcsetup", "matplotlib.scale", "matplotlib.spines", "matplotlib.stackplot", "matplotlib.streamplot",
        "matplotlib.style", "matplotlib.table", "matplotlib.testing", "matplotlib.testing.compare",
        "matplotlib.testing.decorators", "matplotlib.text", "matplotlib.textpath", "matplotlib.transforms",
        "matplotlib.tri", "mpl_toolkits.axes_grid1", "mpl_toolkits.axes_grid1.axes_divider",
        "mpl_toolkits.axes_grid1.axes_rgb", "mpl_toolkits.axes_grid1.axes_size", "mpl_toolkits.axes_grid1.inset_locator",
        "mpl_toolkits.axes_grid1.parasite_axes", "mpl_toolkits.mplot3d.art3d", "mpl_toolkits.mplot3d.axes3d",
        "mpl_toolkits.mplot3d.proj3d")),
}
DISTRIBUTIONS = {"numpy": "numpy", "scipy": "scipy", "scikit-learn": "sklearn", "matplotlib": "matplotlib"}
#: Samples kept per library at most: numpy and scipy have several times more functions than the others.
PER_CLASS = 550
MIN_CHARS = 20
TEST_FRACTION = 0.2
SPLIT_SEED = 0
_SIGNATURE = re.compile(r"^[A-Za-z_][\w.]*\(")
_UNDERLINE = re.compile(r"^\s*[-=~]{3,}\s*$", re.MULTILINE)


def docstrings() -> tuple[list[str], np.ndarray, list[str]]:
    """(texts, (N,) int64 labels, class names): one function summary per sample, labelled by library."""
    texts, labels, names = _build()
    return list(texts), np.asarray(labels, dtype=np.int64), list(names)


def corpus_source() -> str:
    """Where the texts come from, with the versions that decide them (for the report's provenance line)."""
    from importlib.metadata import version

    versions = ", ".join(f"{label} {version(label)}" for label in sorted(DISTRIBUTIONS, key=_walk_order))
    return f"builtin:docstrings (first paragraphs of public functions' docstrings: {versions}; label: library)"


def split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted row indices of the fixed stratified train/test split both the baseline and the demo model use."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(labels))
    train, test = train_test_split(rows, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels)
    return np.sort(train), np.sort(test)


def tfidf_baseline() -> float:
    """Held-out accuracy of word uni+bigram TF-IDF + logistic regression: the bar a learned encoder should reach."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    texts, labels, _ = docstrings()
    train, test = split(labels)
    vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2))
    features = vectorizer.fit_transform([texts[i] for i in train])
    classifier = LogisticRegression(max_iter=1000).fit(features, labels[train])
    predicted = classifier.predict(vectorizer.transform([texts[i] for i in test]))
    return float(np.mean(predicted == labels[test]))


def summary(doc: str | None) -> str | None:
    """The first prose paragraph of a docstring, whitespace collapsed; None when there is none worth keeping."""
    if not doc:
        return None
    for paragraph in re.split(r"\n\s*\n", inspect.cleandoc(doc)):
        if _UNDERLINE.search(paragraph):  # a numpydoc section ("Parameters\n----"): the summary is missing
            return None
        text = " ".join(paragraph.split())
        if not text or _SIGNATURE.match(text) or text.startswith(".. "):  # call signature or rst directive
            continue
        return text if len(text) >= MIN_CHARS else None
    return None


def _walk_order(label: str) -> int:
    return list(LIBRARIES).index(label)


@functools.lru_cache(maxsize=1)
def _build() -> tuple[tuple[str, ...], tuple[int, ...], tuple[str, ...]]:
    """Walk the fixed modules once per process (about 2 s, mostly imports)."""
    import matplotlib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        matplotlib.use("Agg")  # pyplot must never look for a display
        seen_objects: set[int] = set()
        seen_texts: set[str] = set()
        found: dict[str, list[tuple[str, str]]] = {}
        for label, (roots, modules) in LIBRARIES.items():
            found[label] = []
            for module_name in modules:
                module = importlib.import_module(module_name)
                for name in sorted(dir(module)):
                    obj = _public_function(module, name, roots)
                    if obj is None or id(obj) in seen_objects:
                        continue
                    seen_objects.add(id(obj))
                    text = summary(getattr(obj, "__doc__", None))
                    if text is not None and text not in seen_texts:
                        seen_texts.add(text)
                        found[label].append((f"{module_name}.{name}", text))
    class_names = sorted(found)
    texts: list[str] = []
    labels: list[int] = []
    for index, label in enumerate(class_names):
        items = sorted(found[label])
        if len(items) > PER_CLASS:
            chosen = np.random.default_rng(SPLIT_SEED).choice(len(items), PER_CLASS, replace=False)
            items = [items[i] for i in np.sort(chosen)]
        texts += [text for _, text in items]
        labels += [index] * len(items)
    return tuple(texts), tuple(labels), tuple(class_names)


def _public_function(module: Any, name: str, roots: tuple[str, ...]) -> Any:
    """``module.name`` when it is a public function (Python, builtin, Cython or ufunc) the library defines."""
    if name.startswith("_"):
        return None
    try:
        obj = getattr(module, name)
    except (AttributeError, ImportError, RuntimeError):  # removed, deprecated or lazily failing attributes
        return None
    if isinstance(obj, np.ufunc):  # ufuncs report module "numpy" even in scipy.special
        return obj
    if inspect.isclass(obj) or not inspect.isroutine(obj):
        return None
    owner = str(getattr(obj, "__module__", None) or "")
    return obj if owner.split(".")[0] in roots else None
