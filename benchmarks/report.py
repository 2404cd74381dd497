"""Report size and render time against the targets.

- the demo pipeline: report.html size (target < 5 MB) and render time (target < 15 s on 2 cores);
- MobileNetV2(weights=None, 96x96x3) with every Conv2D layer selected, on random
  images: report.html size (target < 25 MB) and render time.

Render times are the median of ``--repeat`` renders of the same stored run, each
in a fresh process that never imports TensorFlow (as ``deeprep render`` runs).

    python benchmarks/report.py [--repeat 3] [--samples 256]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def run(pipeline: Path, out: Path) -> None:
    command = [sys.executable, "-m", "deeprep_report", "run", str(pipeline), "--out", str(out), "--quiet",
               "--set", "report.enabled=false"]
    subprocess.run(command, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def render_seconds(run_dir: Path, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "deeprep_report", "render", str(run_dir), "--quiet"], check=True,
                       stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def mobilenet_pipeline(folder: Path, samples: int) -> Path:
    import numpy as np

    from deeprep_report.tf_runtime import import_tensorflow

    import_tensorflow()
    import keras

    network = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3))
    convs = [layer.name for layer in network.layers if type(layer).__name__ == "Conv2D"]
    images = np.random.default_rng(0).random((samples, 96, 96, 3), dtype=np.float32)
    np.savez(folder / "images.npz", x=images, y=np.arange(samples) % 10)
    pipeline = folder / "mobilenet.yaml"
    pipeline.write_text(yaml.safe_dump({
        "run": {"name": "mobilenet"},
        "models": [{"name": "mobilenet_v2", "application": "MobileNetV2",
                    "options": {"input_shape": [96, 96, 3]}, "layers": convs}],
        "datasets": [{"name": "random", "path": "images.npz"}],
    }), encoding="utf-8")
    return pipeline


def report(label: str, run_dir: Path, repeat: int, size_target: float, time_target: float | None) -> None:
    seconds = render_seconds(run_dir, repeat)
    size = (run_dir / "report.html").stat().st_size / 1e6
    layers = len(yaml.safe_load((run_dir / "pipeline.yaml").read_text())["models"][0]["layers"]) \
        if isinstance(yaml.safe_load((run_dir / "pipeline.yaml").read_text())["models"][0]["layers"], list) else "all"
    print(f"{label} ({layers} layers selected)")
    print(f"  report.html  {size:6.2f} MB   (target < {size_target:g} MB)")
    target = f"   (target < {time_target:g} s)" if time_target else ""
    print(f"  render       {seconds:6.2f} s{target}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--samples", type=int, default=256, help="random images for MobileNetV2")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="deeprep-report-bench-") as tmp:
        folder = Path(tmp)
        run(ROOT / "pipeline.yaml", folder / "demo")
        report("demo", folder / "demo", args.repeat, 5, 15)
        run(mobilenet_pipeline(folder, args.samples), folder / "mobilenet")
        report(f"MobileNetV2 96x96, {args.samples} random images", folder / "mobilenet", args.repeat, 25, None)


if __name__ == "__main__":
    main()
