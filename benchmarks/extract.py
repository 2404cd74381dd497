"""Extraction speed and memory against baselines measured in the same run.

For each model (the demo CNN on digits, and MobileNetV2(weights=None) at
96x96x3 on random images, its Conv2D, DepthwiseConv2D and activation layers
selected) this prints:

- deeprep: the extract stage (forward pass, statistics, HDF5 writes) as a user runs it;
- bare: the model's own output only, in a compiled tf.function over the same batches;
- tutorial: ``keras.Model(inputs, [l.output for l in layers]).predict(x)``;
- peak RSS of the deeprep extraction at N = 1,024 and N = 4,096.

Every measurement runs in a fresh process (so peak RSS is its own and nothing
is warm that a user's run would not have); numba's compiled kernels are cached
on disk by a warm-up run first. Machines here are noisy: read the ratios.

    python benchmarks/extract.py [--repeat 3] [--models demo,mobilenet] [--sizes 1024,4096]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BATCH = 64
MOBILENET_INPUT = (96, 96, 3)


def make_data(folder: Path, model: str, n: int) -> Path:
    """An HDF5 dataset of n samples for the model (digits repeated, or uniform random images)."""
    import h5py
    import numpy as np

    path = folder / f"{model}-{n}.h5"
    if path.exists():
        return path
    if model == "demo":
        from deeprep_report.sources.demo import digits

        x, y = digits()
        rows = np.arange(n) % len(x)
        x, y = x[rows], y[rows]
    else:
        x = np.random.default_rng(0).random((n, *MOBILENET_INPUT), dtype=np.float32)
        y = np.zeros(n, dtype=np.int64)
    with h5py.File(path, "w") as handle:
        handle["x"] = x
        handle["y"] = y
    return path


def build_model(model: str):
    import keras

    keras.utils.set_random_seed(0)
    if model == "demo":
        from deeprep_report.sources.demo import digits_cnn_path

        return keras.saving.load_model(digits_cnn_path())
    return keras.applications.MobileNetV2(weights=None, input_shape=MOBILENET_INPUT)


def selected_layers(network) -> list:
    """Conv2D, DepthwiseConv2D and activation layers (for the demo CNN: every layer, as the demo selects)."""
    import keras

    if network.name == "digits_cnn":
        return list(network.layers)
    kinds = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.ReLU, keras.layers.Activation)
    return [layer for layer in network.layers if isinstance(layer, kinds)]


def child(mode: str, model: str, data: Path, n: int, workdir: Path) -> dict:
    """One measurement in this (fresh) process; returns seconds and peak RSS."""
    from deeprep_report.tf_runtime import import_tensorflow

    if mode == "deeprep":  # as `deeprep run` does: load the kernels while TensorFlow imports
        from deeprep_report.extract.kernels import warm_up_in_background

        warm_up_in_background()
    import_tensorflow()
    import h5py
    import keras
    import numpy as np
    import tensorflow as tf

    network = build_model(model)
    layers = selected_layers(network)
    if mode == "deeprep":
        import yaml

        from deeprep_report.config import load_config
        from deeprep_report.extract.extract import extract
        from deeprep_report.extract.plan import make_plan
        from deeprep_report.store import StoreWriter

        source = {"builtin": "digits_cnn"} if model == "demo" else {
            "application": "MobileNetV2", "options": {"input_shape": list(MOBILENET_INPUT)}}
        pipeline = workdir / f"{model}-{n}.yaml"
        pipeline.write_text(yaml.safe_dump({
            "run": {"name": "bench"},
            "models": [{"name": model, **source, "layers": [layer.name for layer in layers]}],
            "datasets": [{"name": "data", "path": str(data), "batch_size": BATCH, "shuffle": False, "limit": n}],
        }), encoding="utf-8")
        plan = make_plan(load_config(pipeline))
        store = StoreWriter(workdir / f"{model}-{n}.h5out", plan.config.pipeline.store)
        started = time.perf_counter()
        extract(plan, store, bar=False)
        store.close()
        seconds = time.perf_counter() - started
    elif mode == "bare":
        from deeprep_report.sources.datasets import HDF5Dataset

        dataset = HDF5Dataset(data, ["x"], None, None, "bench")
        forward = tf.function(lambda x: network(x, training=False), autograph=False,
                              input_signature=[tf.TensorSpec((None, *dataset.arrays["x"].shape), tf.float32)])
        started = time.perf_counter()
        for start in range(0, n, BATCH):
            batch = dataset.read(np.arange(start, min(n, start + BATCH)), ["x"])["x"]
            forward(batch).numpy()
        seconds = time.perf_counter() - started
    else:  # tutorial
        with h5py.File(data, "r") as handle:
            x = handle["x"][:n]
        started = time.perf_counter()
        probe = keras.Model(network.inputs, [layer.output for layer in layers])
        probe.predict(x, batch_size=BATCH, verbose=0)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "layers": len(layers)}


def measure(mode: str, model: str, data: Path, n: int, workdir: Path) -> dict | None:
    """Run one measurement in a fresh process; None when it was killed for lack of memory."""
    command = [sys.executable, __file__, "--child", mode, model, str(data), str(n), str(workdir)]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if result.returncode in (-9, 137) or "MemoryError" in result.stderr:
        return None
    if result.returncode != 0:
        raise SystemExit(f"{mode} {model} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def median_seconds(mode: str, model: str, data: Path, n: int, workdir: Path, repeat: int) -> float | None:
    runs = [measure(mode, model, data, n, workdir) for _ in range(repeat)]
    return None if any(r is None for r in runs) else statistics.median(r["seconds"] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (the median is shown)")
    parser.add_argument("--models", default="demo,mobilenet")
    parser.add_argument("--sizes", default="1024,4096", help="N for the speed runs (first) and the RSS runs")
    parser.add_argument("--child", nargs=5, metavar=("MODE", "MODEL", "DATA", "N", "WORKDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, model, data, n, workdir = args.child
        print(json.dumps(child(mode, model, Path(data), int(n), Path(workdir))))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="deeprep-bench-") as tmp:
        workdir = Path(tmp)
        print(f"batch {BATCH}, median of {args.repeat} runs, each in a fresh process")
        for model in args.models.split(","):
            data = {n: make_data(workdir, model, n) for n in sizes}
            layers = measure("deeprep", model, data[sizes[0]], sizes[0], workdir)["layers"]  # also warms numba's cache
            n = sizes[0]
            bare = median_seconds("bare", model, data[n], n, workdir, args.repeat)
            ours = median_seconds("deeprep", model, data[n], n, workdir, args.repeat)
            print(f"\n{model}: {layers} layers, N = {n}")
            print(f"  bare forward pass   {bare:7.2f} s")
            print(f"  deeprep extraction  {ours:7.2f} s   {ours / bare:.2f} x bare   (target <= 2.0)")
            tutorial, tutorial_n = None, n
            while tutorial is None and tutorial_n >= 64:
                tutorial = median_seconds("tutorial", model, data[n], tutorial_n, workdir, args.repeat)
                if tutorial is None:
                    print(f"  tutorial predict    killed: out of memory at N = {tutorial_n}")
                    tutorial_n //= 2
            if tutorial is not None:
                ours_same = ours if tutorial_n == n else median_seconds(
                    "deeprep", model, data[n], tutorial_n, workdir, args.repeat)
                print(f"  tutorial predict    {tutorial:7.2f} s at N = {tutorial_n}   deeprep is "
                      f"{tutorial / ours_same:.2f} x faster at that N   (target >= 2)")
            rss = {size: statistics.median(measure("deeprep", model, data[size], size, workdir)["peak_rss_mb"]
                                           for _ in range(max(1, args.repeat - 1))) for size in sizes}
            for size in sizes:
                print(f"  peak RSS, N = {size:5d}  {rss[size]:7.0f} MB")
            growth = rss[sizes[-1]] / rss[sizes[0]] - 1
            print(f"  RSS growth {sizes[0]} -> {sizes[-1]}: {100 * growth:+.1f} %   (target < 15 %)", flush=True)

if __name__ == "__main__":
    main()
