"""Report size and render time: the demo, and default reports of two big keras.applications models.

- the demo pipeline (8 layers, every one shown): the baseline of this run;
- ResNet50 and MobileNetV3Small (weights=None, 96x96x3, every layer captured) on
  256 random images, with the default ``report.layers: auto`` (a chosen set in
  full, flagged layers in brief): report.html size (target <= 15 MB) and render
  time per section shown, against the demo's in the same run (target: render time
  grows at most linearly with the sections shown, i.e. a ratio near or below 1).

Render times are the median of ``--repeat`` renders of the same stored run, each
in a fresh process that never imports TensorFlow (as ``deeprep render`` runs).
``--layers all`` renders the big models with every layer in full instead (the
old default: 34 MB and ten minutes each when it was measured).

    python benchmarks/report.py [--repeat 1] [--samples 256] [--layers auto|all] [--skip-big]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIG = (("ResNet50", "resnet50"), ("MobileNetV3Small", "mobilenet_v3_small"))


def run(pipeline: Path, out: Path) -> None:
    command = [sys.executable, "-m", "deeprep_report", "run", str(pipeline), "--out", str(out), "--quiet",
               "--set", "report.enabled=false"]
    subprocess.run(command, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def render_seconds(run_dir: Path, repeat: int, layers: str) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "deeprep_report", "render", str(run_dir), "--quiet",
                        "--set", f"report.layers={layers}"], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def big_pipeline(folder: Path, application: str, name: str, samples: int) -> Path:
    import numpy as np

    images = folder / "images.npz"
    if not images.exists():
        rng = np.random.default_rng(0)
        np.savez(images, x=rng.random((samples, 96, 96, 3), dtype=np.float32), y=np.arange(samples) % 10)
    pipeline = folder / f"{name}.yaml"
    pipeline.write_text(yaml.safe_dump({
        "run": {"name": name},
        "models": [{"name": name, "application": application, "options": {"input_shape": [96, 96, 3]}}],
        "datasets": [{"name": "random", "path": "images.npz"}],
    }), encoding="utf-8")
    return pipeline


def measure(run_dir: Path, repeat: int, layers: str) -> dict[str, float]:
    seconds = render_seconds(run_dir, repeat, layers)
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    sections = len(re.findall(r'<section id="pair-\d+-layer-\d+" class="layer">', html))
    brief = html.count("In brief (flagged")
    return {"seconds": seconds, "mb": (run_dir / "report.html").stat().st_size / 1e6, "sections": sections,
            "brief": brief, "per_section": seconds / max(1, sections)}


def show(label: str, result: dict[str, float], baseline: dict[str, float] | None, size_target: float) -> None:
    ratio = f"   {result['per_section'] / baseline['per_section']:.2f} x the demo's" if baseline else ""
    print(label)
    print(f"  report.html   {result['mb']:6.2f} MB   (target <= {size_target:g} MB)")
    print(f"  sections      {result['sections']:6d}      ({result['brief']} in brief)")
    print(f"  render        {result['seconds']:6.1f} s")
    print(f"  per section   {result['per_section']:6.2f} s{ratio}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--samples", type=int, default=256, help="random images for the big models")
    parser.add_argument("--layers", default="auto", choices=("auto", "all"), help="report.layers of the big models")
    parser.add_argument("--skip-big", action="store_true", help="only the demo")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="deeprep-report-bench-") as tmp:
        folder = Path(tmp)
        run(ROOT / "pipeline.yaml", folder / "demo")
        demo = measure(folder / "demo", args.repeat, "auto")
        show("demo (digits CNN, 8 layers, 1,000 digits)", demo, None, 5)
        for application, name in ([] if args.skip_big else BIG):
            run(big_pipeline(folder, application, name, args.samples), folder / name)
            show(f"{application} 96x96, every layer captured, {args.samples} random images, report.layers "
                 f"{args.layers}", measure(folder / name, args.repeat, args.layers), demo, 15)


if __name__ == "__main__":
    main()
