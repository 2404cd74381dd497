"""Times and peak memory of the depth analysis.

- linear CKA for N = 10,000 samples with 512 and with 4,096 units per layer
  (feature-space form: memory must stay far below an N × N Gram matrix, 800 MB);
- TwoNN intrinsic dimension on N = 5,000 points (all of them, one estimate);
- the whole analysis of the demo run (trained model and its random baseline).

Peak memory is what numpy allocated during the measurement (tracemalloc).

    python benchmarks/analysis.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def measure(label: str, work: Callable[[], object]) -> object:
    tracemalloc.start()
    started = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"  {label:52s} {seconds:7.2f} s   peak {peak / 1e6:8.1f} MB", flush=True)
    return result


def main() -> None:
    from deeprep_report.analysis import cka, geometry

    rng = np.random.default_rng(0)
    n = 10_000
    print(f"linear CKA, N = {n:,} (an N × N float64 Gram matrix would be {n * n * 8 / 1e6:,.0f} MB)")
    for units in (512, 4096):
        x = rng.normal(size=(n, units))
        y = np.tanh(x[:, :units] @ rng.normal(size=(units, units)) / np.sqrt(units))
        for debiased in (False, True):
            value = measure(f"{units} × {units} units, {'debiased' if debiased else 'biased'}",
                            lambda x=x, y=y, d=debiased: cka.linear_cka(x, y, d))
            print(f"    CKA = {value:.4f}")
        del x, y
    points = rng.normal(size=(5_000, 10))
    print("TwoNN, N = 5,000 points in 10 dimensions (all points, float64 distances)")
    estimate = measure("one estimate on all points", lambda: geometry.twonn(points))
    print(f"    intrinsic dimension = {estimate:.2f}")

    print("whole analysis of the demo run (trained + random baseline)")
    with tempfile.TemporaryDirectory(prefix="deeprep-analysis-bench-") as tmp:
        run_dir = Path(tmp) / "demo"
        subprocess.run([sys.executable, "-m", "deeprep_report", "run", str(ROOT / "pipeline.yaml"), "--out",
                        str(run_dir), "--quiet", "--set", "report.enabled=false"],
                       check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, stdout=subprocess.DEVNULL)
        store_path = Path(tmp) / "store.h5"
        shutil.copy(run_dir / "activations.h5", store_path)
        from deeprep_report.analysis.depth import analyze_pairs
        from deeprep_report.config import AnalysisSection
        from deeprep_report.store import StoreReader

        def analyse() -> dict:
            with StoreReader(store_path, "r+") as store:
                return analyze_pairs(store, AnalysisSection(random_baseline=True), seed=0)

        results = measure("analysis of every pair", analyse)
        for (model, dataset), result in results.items():
            seconds = ", ".join(f"{family} {value:.1f} s" for family, value in result["seconds"].items())
            print(f"    {model} × {dataset}: {seconds}")


if __name__ == "__main__":
    main()
