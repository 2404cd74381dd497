"""What reusing stored activations saves: extraction from scratch (``--force``) against a cached run.

Both are measured in the same session on the same pipeline, each a fresh
``deeprep run`` process; the numbers are the run's own stage timings from
summary.json (median of ``--repeat``), so TensorFlow's import is left out:

- the demo CNN and its random twin on 1,000 digits (preset minimal: no analysis);
- MobileNetV2 (weights=None, 96x96x3, saved once as .keras) with every Conv2D
  layer on random images, where extraction dominates.

    python benchmarks/cache.py [--repeat 3] [--samples 256]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import mobilenet_pipeline  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def timings(pipeline: Path, out: Path, *extra: str) -> dict[str, float]:
    command = [sys.executable, "-m", "deeprep_report", "run", str(pipeline), "--out", str(out), "--quiet",
               "--set", "report.enabled=false", "--fail-on", "never", *extra]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return json.loads((out / "summary.json").read_text())["timings"]


def compare(label: str, pipeline: Path, out: Path, repeat: int) -> None:
    timings(pipeline, out)  # warm: the stored run the next runs reuse
    fresh = [timings(pipeline, out, "--force") for _ in range(repeat)]
    cached = [timings(pipeline, out) for _ in range(repeat)]
    print(label)
    for stage in ("extract", "total"):
        a = statistics.median(t[stage] for t in fresh)
        b = statistics.median(t[stage] for t in cached)
        print(f"  {stage:8s} fresh {a:7.2f} s   reused {b:7.2f} s   fresh / reused {a / b:6.1f} x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--samples", type=int, default=256, help="random images for MobileNetV2")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="deeprep-cache-bench-") as tmp:
        folder = Path(tmp)
        demo = yaml.safe_load((ROOT / "pipeline.yaml").read_text())
        demo["run"]["preset"] = "minimal"
        demo["analysis"] = {"random_baseline": True}
        (folder / "demo.yaml").write_text(yaml.safe_dump(demo))
        compare("demo CNN + random twin, 1,000 digits, preset minimal", folder / "demo.yaml", folder / "runs/demo",
                args.repeat)
        pipeline = mobilenet_pipeline(folder, args.samples)
        settings = yaml.safe_load(pipeline.read_text())
        settings["run"]["preset"] = "minimal"
        import keras  # weights=None initialises anew in every process: a saved file keeps one fingerprint

        keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3)).save(folder / "mobilenet.keras")
        model = settings["models"][0]
        settings["models"][0] = {"name": model["name"], "path": "mobilenet.keras", "layers": model["layers"]}
        pipeline.write_text(yaml.safe_dump(settings))
        compare(f"MobileNetV2 96x96, 35 Conv2D layers, {args.samples} random images, preset minimal", pipeline,
                folder / "runs/mobilenet", args.repeat)


if __name__ == "__main__":
    main()
