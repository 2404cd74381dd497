"""The depth analysis against the extract stage, measured in the same run (machines here are noisy: read ratios).

For the demo CNN (1,000 digits, with its random-weights twin) and MobileNetV2 (weights=None, 96 × 96 × 3,
its 87 Conv2D, DepthwiseConv2D and activation layers, 1,024 random images with 10 random classes) this runs
``deeprep run`` in a fresh process (report off) and prints, from its summary.json:

- the extract stage and the whole analysis, and each analysis family, as ratios to the extract stage;
- the store size with and without the analysis views;

then, on the demo's stored views:

- the ridge probes (closed form, GCV) against a cross-validated logistic regression on the same views,
  accuracy per layer and time (the logistic probe is what the analysis used before views);
- peak RSS of the analysis alone (a fresh process) at N = 2,000 and N = 20,000 digits (repeated).

    python benchmarks/analysis.py [--skip-mobilenet] [--skip-memory]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
MOBILENET_LAYERS = 87


def run(pipeline: Path, out: Path, *extra: str) -> dict:
    subprocess.run([sys.executable, "-m", "deeprep_report", "run", str(pipeline), "--out", str(out), "--quiet",
                    "--set", "report.enabled=false", *extra], check=True, env=ENV, stdout=subprocess.DEVNULL)
    return json.loads((out / "summary.json").read_text())


def view_bytes(store: Path) -> tuple[int, int]:
    """(bytes of the store file, bytes of its analysis views)."""
    import h5py

    views = 0

    def visit(name: str, node: object) -> None:
        nonlocal views
        if isinstance(node, h5py.Dataset) and (name.endswith("/view") or "/views/" in name):
            views += node.id.get_storage_size()

    with h5py.File(store) as handle:
        handle.visititems(visit)
    return store.stat().st_size, views


def report_stages(label: str, summary: dict, store: Path) -> None:
    timings = summary["timings"]
    extract, analysis = timings["extract"], timings["analyze"]
    print(f"\n{label}: extract {extract:.2f} s, analysis {analysis:.2f} s = {analysis / extract:.1f} × extract")
    families: dict[str, float] = {}
    for pair in summary["pairs"]:
        for family, seconds in ((pair.get("analysis") or {}).get("seconds") or {}).items():
            families[family] = families.get(family, 0.0) + seconds
    for family, seconds in families.items():
        print(f"  {family:14s} {seconds:7.2f} s = {seconds / extract:5.1f} × extract")
    total, views = view_bytes(store)
    print(f"  store {total / 1e6:.1f} MB with views, {(total - views) / 1e6:.1f} MB without "
          f"(+{100 * views / max(total - views, 1):.0f} %)")


def demo(workdir: Path) -> Path:
    out = workdir / "demo"
    run(ROOT / "pipeline.yaml", out)  # warm-up: trains and caches the demo model, compiles numba's kernels
    summary = run(ROOT / "pipeline.yaml", out, "--force")
    report_stages("demo CNN + random twin, 1,000 digits", summary, out / "activations.h5")
    return out


def mobilenet(workdir: Path) -> None:
    import h5py
    import numpy as np
    import yaml

    data = workdir / "mobilenet.h5"
    rng = np.random.default_rng(0)
    with h5py.File(data, "w") as handle:
        handle["x"] = rng.random((1024, 96, 96, 3), dtype=np.float32)
        handle["y"] = rng.integers(0, 10, 1024)
    pipeline = workdir / "mobilenet.yaml"
    pipeline.write_text(yaml.safe_dump({
        "run": {"name": "mobilenet"},
        "models": [{"name": "mobilenet", "application": "MobileNetV2", "options": {"input_shape": [96, 96, 3]},
                    "layers": mobilenet_layers()}],
        "datasets": [{"name": "images", "path": str(data), "shuffle": False}],
    }))
    out = workdir / "mobilenet"
    summary = run(pipeline, out)
    report_stages(f"MobileNetV2 96×96, {len(summary['pairs'][0]['layers'])} layers, 1,024 images", summary,
                  out / "activations.h5")


def mobilenet_layers() -> list[str]:
    code = ("import os; os.environ['TF_CPP_MIN_LOG_LEVEL']='3'; import json, keras\n"
            "m = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3))\n"
            "kinds = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.ReLU, keras.layers.Activation)\n"
            "print(json.dumps([l.name for l in m.layers if isinstance(l, kinds)]))")
    names = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                                      env=ENV).stdout)
    assert len(names) == MOBILENET_LAYERS, len(names)
    return names


def probes_side_by_side(run_dir: Path) -> None:
    """Ridge (GCV, closed form) vs logistic regression (standardised, C by 3-fold CV) on the same stored views."""
    import warnings

    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    from deeprep_report.analysis import probes
    from deeprep_report.analysis.features import PairFeatures
    from deeprep_report.config import AnalysisSection
    from deeprep_report.store import StoreReader

    penalties = AnalysisSection().probes.penalties
    print("\nprobes on the demo's views (digits_cnn × digits): ridge + GCV vs logistic regression + 3-fold CV")
    ridge_time = logistic_time = 0.0
    worst = 0.0
    with StoreReader(run_dir / "activations.h5") as store:
        features = PairFeatures(store, "digits_cnn", "digits", include_input=True)
        labels = store.file["datasets/digits/labels"][()]
        train, test = probes.split(labels, 0.2, 0)
        for layer in features.layers:
            x = layer.read()
            started = time.perf_counter()
            ridge = probes.linear_probe(x, labels, train, test, penalties=penalties, bootstrap=0, seed=0)
            ridge_time += time.perf_counter() - started
            started = time.perf_counter()
            scaler = StandardScaler().fit(x[train])
            model = LogisticRegressionCV(Cs=[0.01, 0.1, 1.0, 10.0], cv=StratifiedKFold(3, shuffle=True, random_state=0),
                                         max_iter=300, random_state=0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(scaler.transform(x[train]), labels[train])
            logistic = float((model.predict(scaler.transform(x[test])) == labels[test]).mean())
            logistic_time += time.perf_counter() - started
            worst = max(worst, abs(ridge.accuracy - logistic))
            print(f"  {layer.name:8s} {layer.dims:5d} dims  ridge {ridge.accuracy:.3f}  logistic {logistic:.3f}")
    print(f"  largest difference {worst:.3f} (target ≤ 0.02); time ridge {ridge_time:.2f} s, logistic "
          f"{logistic_time:.2f} s = {logistic_time / ridge_time:.1f} × faster (target ≥ 10 ×)")


def memory_flat_in_n(workdir: Path) -> None:
    """Peak RSS of the analysis alone, in a fresh process, on stores of 2,000 and 20,000 digits."""
    import h5py
    import numpy as np
    import yaml

    from deeprep_report.sources.demo import digits

    print("\npeak RSS of the analysis alone (demo CNN, digits repeated; no random twin)")
    peaks = {}
    for n in (2_000, 20_000):
        x, y = digits()
        rows = np.arange(n) % len(x)
        data = workdir / f"digits-{n}.h5"
        with h5py.File(data, "w") as handle:
            handle["x"], handle["y"] = x[rows], y[rows]
        pipeline = workdir / f"digits-{n}.yaml"
        pipeline.write_text(yaml.safe_dump({
            "run": {"name": f"digits-{n}"}, "models": [{"name": "cnn", "builtin": "digits_cnn"}],
            "datasets": [{"name": "digits", "path": str(data), "shuffle": False}],
            "analysis": {"enabled": False}}))
        out = workdir / f"digits-{n}"
        run(pipeline, out)
        code = ("import resource, sys, time\nfrom deeprep_report.analysis.analyze import analyze\n"
                "from deeprep_report.config import AnalysisSection\nstarted = time.perf_counter()\n"
                "analyze(sys.argv[1], AnalysisSection(), 0, bar=False)\n"
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter() - started)")
        rss, seconds = subprocess.run([sys.executable, "-c", code, str(out / "activations.h5")], check=True,
                                      capture_output=True, text=True, env=ENV).stdout.split()
        peaks[n] = int(rss) / 1024
        print(f"  N = {n:6,}: peak {peaks[n]:7.0f} MB, {float(seconds):6.1f} s")
    print(f"  growth {100 * (peaks[20_000] / peaks[2_000] - 1):+.0f} % (target < 15 %)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-mobilenet", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="deeprep-analysis-bench-") as tmp:
        workdir = Path(tmp)
        run_dir = demo(workdir)
        probes_side_by_side(run_dir)
        if not args.skip_mobilenet:
            mobilenet(workdir)
        if not args.skip_memory:
            memory_flat_in_n(workdir)
    print(f"\n(peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
