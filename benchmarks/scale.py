"""Scale-out: the extract stage in one process vs on a local Dask cluster, the shard merge, and copy vs
HDF5 virtual datasets for it (issue 15; docs/cluster.md, docs/design.md "Running on Dask").

MobileNetV2(weights=None) at 96×96×3 on random images, the Conv2D, DepthwiseConv2D and activation layers
(as ``benchmarks/extract.py`` selects them), batch 64, N = 8,192, default store and views. Printed:

- one process: the extract stage as ``deeprep run`` runs it (``run.executor.kind: local``);
- Dask: the same with ``run.executor: {kind: dask, address: local, workers: 2}`` — cluster start, workers
  importing TensorFlow and loading the model, every shard, and the merge into one store all counted. On a
  2-core machine two workers share the cores one process uses: this measures overhead (target ≤ 1.25×);
- merge: the coordinator's time merging the shards (the pair's ``merge_seconds``, mostly overlapped with the
  extraction of later shards) against the Dask extract stage;
- copy vs virtual datasets: the merged store's per-sample arrays cut into the run's shards again, then joined
  into one store by copying (``merge.copy_rows``, what a run does) or by HDF5 virtual datasets with relative
  paths, each followed by one full read of every array (what the analysis does);
- on a GPU: the extract stage with ``extract.reduce: host`` and ``device`` against the bare forward pass
  (target: device ≤ 1.5× bare); without a GPU, that it was not measured.

Each measurement runs in a fresh process. Machines here are noisy: read the ratios.

    python benchmarks/scale.py [--n 8192] [--workers 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("bench_extract", HERE / "extract.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)  # the data, model and layers of benchmarks/extract.py: one definition


def pipeline(workdir: Path, data: Path, n: int, executor: dict, reduce: str) -> Path:
    import yaml

    from deeprep_report.tf_runtime import import_tensorflow

    import_tensorflow()  # quietly: the layer names come from building the model here
    path = workdir / f"scale-{len(list(workdir.glob('scale-*.yaml')))}.yaml"
    network = bench.build_model("mobilenet")
    path.write_text(yaml.safe_dump({
        "run": {"name": "scale", "executor": executor},
        "models": [{"name": "mobilenet", "application": "MobileNetV2",
                    "options": {"input_shape": list(bench.MOBILENET_INPUT)},
                    "layers": [layer.name for layer in bench.selected_layers(network)]}],
        "datasets": [{"name": "data", "path": str(data), "batch_size": bench.BATCH, "shuffle": False, "limit": n}],
        "extract": {"reduce": reduce},
    }), encoding="utf-8")
    return path


def child_extract(config_path: Path, out: Path) -> dict:
    """The extract stage of a pipeline into ``out/activations.h5``, as ``deeprep run`` does it."""
    from deeprep_report.extract.kernels import warm_up_in_background
    from deeprep_report.tf_runtime import import_tensorflow

    warm_up_in_background()
    import_tensorflow()
    from deeprep_report.config import load_config
    from deeprep_report.extract.extract import extract
    from deeprep_report.extract.plan import make_plan
    from deeprep_report.store import StoreWriter, new_run_id

    out.mkdir(parents=True)
    plan = make_plan(load_config(config_path))
    started = time.perf_counter()  # as benchmarks/extract.py: the stage, not loading the model
    with StoreWriter(out / "activations.h5", plan.config.pipeline.store) as store:
        extract(plan, store, bar=False, run_id=new_run_id())
    seconds = time.perf_counter() - started
    import h5py

    with h5py.File(out / "activations.h5", "r") as handle:
        attrs = handle["pairs/mobilenet/data"].attrs
        merge = float(attrs.get("merge_seconds", 0.0))
        shards = int(attrs.get("shards", 1))
    return {"seconds": seconds, "merge_seconds": merge, "shards": shards}


def child_join(store: Path, shards: int, workdir: Path) -> dict:
    """Copy vs virtual datasets for the per-sample arrays of ``store``, cut into ``shards`` files."""
    import h5py
    import numpy as np

    from deeprep_report.config.sections import StoreSection
    from deeprep_report.extract.cluster.merge import copy_rows
    from deeprep_report.extract.cluster.shards import bounds
    from deeprep_report.store import StoreWriter

    with h5py.File(store, "r") as handle:
        n = int(handle["pairs/mobilenet/data"].attrs["n_samples"])
        names: list[str] = []
        handle.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset)
                          and name.startswith("pairs/") and item.shape[:1] == (n,) else None)
        size = -(-n // shards)
        cut = bounds(n, size)
        files = [workdir / f"shard-{i}.h5" for i in range(len(cut))]
        for (start, stop), path in zip(cut, files):
            with h5py.File(path, "w") as shard:
                for name in names:
                    shard.create_dataset(name, data=handle[name][start:stop])
        total = sum(handle[name].nbytes for name in names)

    def read_all(path: Path) -> float:
        clock = time.perf_counter()
        with h5py.File(path, "r") as joined:
            for name in names:
                joined[name][()]
        return time.perf_counter() - clock

    clock = time.perf_counter()
    sources = [h5py.File(path, "r") for path in files]
    with StoreWriter(workdir / "copy.h5", StoreSection()) as writer:
        for name in names:  # as merge.PairMerge copies them: created as the writer creates it, block by block
            parts = [source[name] for source in sources]
            target = writer.create(name, (n, *parts[0].shape[1:]), parts[0].dtype)
            offset = 0
            for part in parts:
                offset = copy_rows(target, part, offset)
    for source in sources:
        source.close()
    copy = time.perf_counter() - clock
    clock = time.perf_counter()
    with h5py.File(workdir / "virtual.h5", "w") as joined:
        for name in names:
            with h5py.File(files[0], "r") as first:
                shape, dtype = first[name].shape[1:], first[name].dtype
            layout = h5py.VirtualLayout(shape=(n, *shape), dtype=dtype)
            for (start, stop), path in zip(cut, files):
                layout[start:stop] = h5py.VirtualSource(path.name, name, shape=(stop - start, *shape))
            joined.create_virtual_dataset(name, layout, fillvalue=np.nan if dtype.kind == "f" else 0)
    virtual = time.perf_counter() - clock
    here = os.getcwd()
    os.chdir(workdir)  # relative source paths resolve against the working directory too
    try:
        read_virtual = read_all(workdir / "virtual.h5")
    finally:
        os.chdir(here)
    return {"arrays": len(names), "megabytes": total / 1e6, "copy": copy, "read_copy": read_all(workdir / "copy.h5"),
            "virtual": virtual, "read_virtual": read_virtual}


def child_bare(data: Path, n: int) -> dict:
    """The model's own output only, compiled, over the same batches (benchmarks/extract.py's baseline)."""
    return bench.child("bare", "mobilenet", data, n, data.parent)


def child_gpu() -> dict:
    from deeprep_report.tf_runtime import import_tensorflow

    tf = import_tensorflow()
    return {"gpus": len(tf.config.list_physical_devices("GPU"))}


def run_child(*args: str) -> dict:
    result = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if result.returncode != 0:
        raise SystemExit(f"{args[0]} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=8192)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        result = {"extract": lambda: child_extract(Path(rest[0]), Path(rest[1])),
                  "join": lambda: child_join(Path(rest[0]), int(rest[1]), Path(rest[2])),
                  "bare": lambda: child_bare(Path(rest[0]), int(rest[1])), "gpu": child_gpu}[kind]()
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory(prefix="deeprep-scale-") as tmp:
        workdir = Path(tmp)
        data = bench.make_data(workdir, "mobilenet", args.n)
        local = pipeline(workdir, data, args.n, {"kind": "local"}, "host")
        run_child("extract", str(local), str(workdir / "warm"))  # numba's cache, the OS's file cache
        one = run_child("extract", str(local), str(workdir / "one"))
        dask = pipeline(workdir, data, args.n, {"kind": "dask", "address": "local", "workers": args.workers}, "host")
        spread = run_child("extract", str(dask), str(workdir / "dask"))
        print(f"MobileNetV2 96x96, {args.n} images, batch {bench.BATCH}, {os.cpu_count()} cores")
        print(f"  one process               {one['seconds']:7.1f} s")
        print(f"  Dask, {args.workers} local workers     {spread['seconds']:7.1f} s   {spread['seconds'] / one['seconds']:.2f} x "
              f"one process   (target <= 1.25 on 2 cores)   {spread['shards']} shards")
        print(f"  shard merge               {spread['merge_seconds']:7.1f} s   "
              f"{spread['merge_seconds'] / spread['seconds']:.2f} x the Dask extract stage (each shard is copied "
              "as soon as it and the ones before it are done, while the others run)")
        join = workdir / "join"
        join.mkdir()
        joined = run_child("join", str(workdir / "dask/activations.h5"), str(spread["shards"]), str(join))
        print(f"  join {joined['arrays']} per-sample arrays ({joined['megabytes']:.0f} MB) from {spread['shards']} shards:")
        print(f"    copy (merge.copy_rows)    {joined['copy']:6.2f} s, then a full read {joined['read_copy']:6.2f} s")
        print(f"    virtual datasets          {joined['virtual']:6.2f} s, then a full read {joined['read_virtual']:6.2f} s")
        if not run_child("gpu")["gpus"]:
            print("  GPU: none here; host vs device reduction vs the bare forward pass not measured")
            return
        bare = run_child("bare", str(data), str(args.n))["seconds"]
        for reduce in ("host", "device"):
            result = run_child("extract", str(pipeline(workdir, data, args.n, {"kind": "local"}, reduce)),
                               str(workdir / reduce))
            target = "   (target <= 1.5)" if reduce == "device" else ""
            print(f"  GPU, reduce on the {reduce:6s}  {result['seconds']:7.1f} s   {result['seconds'] / bare:.2f} x the "
                  f"bare forward pass ({bare:.1f} s){target}")


if __name__ == "__main__":
    main()
