"""Peak memory of a default ``deeprep run`` (extract, analysis, checks and report) at N = 2,000 and 20,000.

The model is a 28-layer CNN (seven conv → batch-norm → ReLU blocks, three
max-pools, global pooling, two dense layers and a dropout) on 32 × 32 × 3
uniform random images with 10 random classes, read batch by batch from HDF5.
Every layer is selected and the analysis runs with its defaults (probes, CKA,
geometry, class structure), so this is what a scheduled job would pay.
Each run is a fresh process; its peak RSS is read by a wrapper process from
``RUSAGE_CHILDREN``. The baseline is the same pipeline at N = 2,000, measured
in the same session: read the ratio (target < 15 % growth).

    python benchmarks/memory.py [--sizes 2000,20000] [--keep FOLDER]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
SHAPE = (32, 32, 3)
FACTORY = '''
import keras


def build():
    """28 layers: 7 × (Conv2D, BatchNormalization, ReLU), 3 MaxPooling2D, GAP, Dense, Dropout, Dense."""
    x = inputs = keras.Input((32, 32, 3), name="pixels")
    for block, width in enumerate((16, 16, 32, 32, 64, 64, 96)):
        x = keras.layers.Conv2D(width, 3, padding="same", name=f"conv{block}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{block}")(x)
        x = keras.layers.ReLU(name=f"relu{block}")(x)
        if block in (1, 3, 5):
            x = keras.layers.MaxPooling2D(name=f"pool{block}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(64, activation="relu", name="dense")(x)
    x = keras.layers.Dropout(0.1, name="dropout")(x)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="logits")(x))
'''
WRAPPER = ("import resource, subprocess, sys, time\nstarted = time.perf_counter()\n"
           "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter() - started)")


def make_data(folder: Path, n: int) -> Path:
    """n uniform random uint8 images and labels, written in chunks (this process stays small too)."""
    import h5py
    import numpy as np

    path = folder / f"images-{n}.h5"
    rng = np.random.default_rng(n)
    with h5py.File(path, "w") as handle:
        x = handle.create_dataset("x", (n, *SHAPE), dtype=np.uint8, chunks=(256, *SHAPE))
        for start in range(0, n, 4096):
            stop = min(n, start + 4096)
            x[start:stop] = rng.integers(0, 256, (stop - start, *SHAPE), dtype=np.uint8)
        handle["y"] = rng.integers(0, 10, n)
    return path


def pipeline(folder: Path, data: Path, n: int) -> Path:
    (folder / "cnn28.py").write_text(FACTORY)
    path = folder / f"pipeline-{n}.yaml"
    path.write_text(json.dumps({
        "run": {"name": f"memory-{n}"}, "models": [{"name": "cnn28", "factory": "cnn28:build"}],
        "datasets": [{"name": "images", "path": str(data), "rescale": 1 / 255}]}))
    return path


def measure(folder: Path, n: int) -> tuple[float, float, int]:
    """Peak RSS (MB), wall seconds and selected layers of one default run in a fresh process."""
    config = pipeline(folder, make_data(folder, n), n)
    out = folder / f"run-{n}"
    command = [sys.executable, "-m", "deeprep_report", "run", str(config), "--out", str(out), "--quiet"]
    rss, seconds = subprocess.run([sys.executable, "-c", WRAPPER, *command], check=True, capture_output=True,
                                  text=True, env=ENV).stdout.split()
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["pairs"][0]["n_samples"] == n, "the run did not use every sample"
    return int(rss) / 1024, float(seconds), len(summary["pairs"][0]["layers"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,20000")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="deeprep-memory-bench-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        print(f"peak RSS of a default deeprep run (28-layer CNN, {SHAPE[0]}×{SHAPE[1]}×{SHAPE[2]}, batch 64)")
        peaks = {}
        for n in sizes:
            started = time.perf_counter()
            peaks[n], seconds, layers = measure(folder, n)
            print(f"  N = {n:6,}: peak {peaks[n]:7.0f} MB, run {seconds:6.1f} s ({layers} layers; "
                  f"{time.perf_counter() - started:.0f} s with the data)", flush=True)
        first, last = sizes[0], sizes[-1]
        print(f"  growth {first:,} → {last:,}: {100 * (peaks[last] / peaks[first] - 1):+.1f} % (target < 15 %)")


if __name__ == "__main__":
    main()
