"""Runs on Dask (issue 15): the same pipeline with ``--dask local`` (1, 2 and 3 worker processes, shards that
do not divide N) and on a separately started ``dask scheduler`` + ``dask worker`` store the same numbers as one
process; a worker killed mid-shard changes nothing; a shard's bad data is the usual one line and exit 2; a lost
scheduler is exit 3. The pipeline holds an image model with maps, a masked text model and a model built by a
factory, each with its random-weights twin, so shards carry full maps, views, token rows, top contexts and the
coordinator's weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import h5py
import keras
import numpy as np
import pytest

import models as zoo
from conftest import read_summary, run_cli, verdict_line, write_pipeline
from test_text import conv_model, token_data

N = 101  # rows of each dataset: no shard size below divides it
TIMING = {"started", "seconds", "samples_per_second", "first_batch_seconds", "shards", "workers", "worker_seconds",
          "merge_seconds", "dask"}  # how and how fast it ran, not what it found
ACCUMULATED = ("moments/", "stats/")  # summed in another order: equal within 1e-12 relative


#: A model built in code, randomly initialised (seeded): its workers must use the coordinator's weights.
FACTORY = """
import keras


def small():
    return keras.Sequential([keras.Input((6, 6, 2), name="pixels"), keras.layers.Flatten(name="flat"),
                             keras.layers.Dense(8, activation="relu", name="dense")], name="small")
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, demo_cache: Path) -> Path:
    """The two-model pipeline and its one-process run (``outputs/one``), the reference of every Dask run."""
    from deeprep_report.cli import main
    from deeprep_report.tf_runtime import import_tensorflow

    import_tensorflow()
    keras.utils.set_random_seed(0)
    folder = tmp_path_factory.mktemp("cluster")
    zoo.sequential().save(folder / "image.keras")
    conv_model().save(folder / "text.keras")
    (folder / "nets.py").write_text(FACTORY, encoding="utf-8")
    np.savez(folder / "images.npz", **zoo.data(N))
    np.savez(folder / "tokens.npz", **token_data(N))
    write_pipeline(folder, {
        "run": {"name": "one", "seed": 3},
        "models": [{"name": "m", "path": "image.keras"}, {"name": "t", "path": "text.keras"},
                   {"name": "f", "factory": "nets:small", "datasets": ["d"]}],
        "datasets": [{"name": "d", "path": "images.npz", "batch_size": 16},
                     {"name": "s", "path": "tokens.npz", "batch_size": 16}],
        "store": {"full_samples": 40},
        "analysis": {"random_baseline": True, "tokens": {"samples": 300, "contexts": 3}},
        "checks": [{"rule": "nan_inf"}, {"rule": "dead_units", "max": 0.3, "severity": "warn"}],
    })
    assert main(["run", str(folder / "pipeline.yaml"), "--quiet"]) == 0
    return folder


def dask_command(project: Path, name: str, *settings: str, address: str = "local", quiet: bool = False) -> list[str]:
    """``deeprep run --dask ADDRESS --set SETTING…`` into ``<project>/<name>/run`` (its own parent: nothing to
    reuse)."""
    command = [sys.executable, "-m", "deeprep_report", "run", str(project / "pipeline.yaml"), "--dask", address,
               "--out", str(project / name / "run"), *(["--quiet"] if quiet else [])]
    for setting in settings:
        command += ["--set", setting]
    return command


def dask_run(project: Path, name: str, *settings: str, address: str = "local", quiet: bool = False
             ) -> tuple[int, str, str]:
    """:func:`dask_command` in a subprocess, as a user runs it: (exit code, stdout, stderr)."""
    result = subprocess.run(dask_command(project, name, *settings, address=address, quiet=quiet),
                            capture_output=True, text=True, timeout=600, env=os.environ.copy())
    return result.returncode, result.stdout, result.stderr


def assert_same_store(one: Path, other: Path) -> None:
    """Every array and attribute of two stores equal: bit for bit, except the running statistics (1e-12
    relative), the timings and the run's identity."""
    with h5py.File(one, "r") as a, h5py.File(other, "r") as b:
        for key in ("dataset_names", "model_names", "pairs", "format_version"):
            assert a.attrs[key] == b.attrs[key], key
        names: list[str] = []
        a.visit(names.append)
        theirs: list[str] = []
        b.visit(theirs.append)
        assert sorted(names) == sorted(theirs)
        for name in names:
            left, right = a[name], b[name]
            skip = TIMING if name.count("/") == 2 and name.startswith("pairs/") else set()
            _same_attrs(left, right, skip)
            if isinstance(left, h5py.Dataset):
                assert left.dtype == right.dtype and left.shape == right.shape, name
                if any(part in name for part in ACCUMULATED) and left.dtype.kind == "f":
                    np.testing.assert_allclose(right[()], left[()], rtol=1e-12, atol=0, err_msg=name)
                else:
                    np.testing.assert_array_equal(right[()], left[()], err_msg=name)


def _same_attrs(left: h5py.HLObject, right: h5py.HLObject, skip: set[str]) -> None:
    """Attributes equal where they are strings, integers or arrays; floats (the analysis metrics, as JSON)
    within 1e-12 relative."""
    assert set(left.attrs) - skip == set(right.attrs) - skip
    for key in set(left.attrs) - skip:
        x, y = left.attrs[key], right.attrs[key]
        if isinstance(x, str) and x.startswith(("[", "{")):
            _close(json.loads(x), json.loads(y), f"{left.name}@{key}")
        else:
            np.testing.assert_array_equal(x, y, err_msg=f"{left.name}@{key}")


def _close(x: object, y: object, where: str) -> None:
    if isinstance(x, dict):
        assert isinstance(y, dict) and set(x) == set(y), where
        for key in set(x) - TIMING:  # how long a stage took is not a result
            _close(x[key], y[key], f"{where}.{key}")
    elif isinstance(x, list):
        assert isinstance(y, list) and len(x) == len(y), where
        for i, (p, q) in enumerate(zip(x, y)):
            _close(p, q, f"{where}[{i}]")
    elif isinstance(x, float) and isinstance(y, float):
        assert x == pytest.approx(y, rel=1e-12, abs=0, nan_ok=True), where
    else:
        assert x == y, where


def assert_same_run(one: Path, other: Path) -> None:
    assert_same_store(one / "activations.h5", other / "activations.h5")
    left, right = read_summary(one), read_summary(other)
    assert left["checks"]["verdict"] == right["checks"]["verdict"]
    _close(left["checks"], right["checks"], "checks")
    _close(left["pairs"], right["pairs"], "pairs")
    assert not [path for path in other.rglob("*") if "shards" in path.parts or ".tmp-" in path.name]


@pytest.mark.parametrize("workers,shard", [(1, 96), (2, 32), (3, 48)])
def test_a_local_cluster_stores_what_one_process_stores(project, workers, shard):
    code, out, err = dask_run(project, f"w{workers}", f"run.executor.workers={workers}",
                              f"run.executor.shard_size={shard}")
    assert code == 0, err
    run = project / f"w{workers}" / "run"
    assert out == verdict_line(run) + "\n"
    assert_same_run(project / "outputs/one", run)
    shards = -(-N // shard)
    with h5py.File(run / "activations.h5", "r") as store:
        pair = store["pairs/m/d"].attrs
        assert pair["shards"] == shards and len(json.loads(pair["workers"])) <= workers
        assert pair["merge_seconds"] >= 0 and pair["n_samples"] == N
    assert f"6 pairs in {6 * shards} shards on {workers} workers" in (run / "run.log").read_text(encoding="utf-8")
    record = read_summary(run)["pairs"][0]["dask"]
    assert record["shards"] == shards and 1 <= record["workers"] <= workers and record["worker_seconds"] > 0
    assert read_summary(project / "outputs/one")["pairs"][0]["dask"] is None
    assert f"on Dask: {shards} shards on {record['workers']} worker" in (run / "report.html").read_text(encoding="utf-8")


def test_shards_reduced_on_the_device_store_what_one_process_does(project, capsys):
    """``extract.reduce: device`` (on this CPU, TensorFlow's ops in the forward pass) through the worker's cached
    device forward function: the same store as the one-process device path."""
    from deeprep_report.cli import main

    one = project / "one-device" / "run"
    assert main(["run", str(project / "pipeline.yaml"), "--quiet", "--out", str(one),
                 "--set", "extract.reduce=device"]) == 0
    code, _, err = dask_run(project, "device", "run.executor.workers=2", "run.executor.shard_size=48",
                            "extract.reduce=device", quiet=True)
    assert code == 0, err
    run = project / "device" / "run"
    assert_same_run(one, run)
    with h5py.File(run / "activations.h5", "r") as store:
        assert store["pairs/m/d/layers/conv"].attrs["reduced_on"] == "device"
        assert store["pairs/t/s/layers/conv"].attrs["reduced_on"] == "host"  # token-aligned: masked on the host


def test_a_shard_size_that_splits_a_batch_is_refused(project, capsys):
    code, out, err = run_cli(capsys, "run", str(project / "pipeline.yaml"), "--quiet", "--dask", "local",
                             "--set", "run.executor.shard_size=40", "--out", str(project / "outputs/refused"))
    assert (code, out) == (2, "")
    assert err == (f"error: {project / 'pipeline.yaml'}: run.executor.shard_size: 40 rows is not a whole number of "
                   "batches of every dataset (batch_size 16): a shard is whole batches, so that every sample is "
                   "computed as in one process; use 32 or 48\n")
    assert not (project / "outputs/refused").exists()


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory, demo_cache: Path) -> Path:
    """A pipeline whose shards take long enough to be interrupted, and its one-process run (``outputs/one``)."""
    from deeprep_report.cli import main
    from deeprep_report.tf_runtime import import_tensorflow

    import_tensorflow()
    keras.utils.set_random_seed(1)
    folder = tmp_path_factory.mktemp("slow")
    keras.Sequential([keras.Input((32, 32, 3), name="pixels"),
                      keras.layers.Conv2D(16, 3, activation="relu", name="conv1"),
                      keras.layers.Conv2D(32, 3, activation="relu", name="conv2"),
                      keras.layers.GlobalAveragePooling2D(name="gap"),
                      keras.layers.Dense(4, activation="softmax", name="out")]).save(folder / "model.keras")
    rng = np.random.default_rng(1)
    np.savez(folder / "data.npz", x=rng.normal(size=(1200, 32, 32, 3)).astype(np.float32), y=rng.integers(0, 4, 1200))
    write_pipeline(folder, {"run": {"name": "one", "preset": "minimal"},
                            "models": [{"name": "m", "path": "model.keras"}],
                            "datasets": [{"name": "d", "path": "data.npz", "batch_size": 32}]})
    assert main(["run", str(folder / "pipeline.yaml"), "--quiet"]) == 0
    return folder


def wait_for_shard(run: Path, process: subprocess.Popen, timeout: float = 120) -> int:
    """The process id of a worker while it writes a shard file (``<stem>.tmp-<pid>-<hex>.h5``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        for partial in run.glob(".deeprep-partial-*/shards/*.tmp-*.h5"):
            return int(partial.name.split(".tmp-")[1].split("-")[0])
        time.sleep(0.02)
    raise AssertionError("no shard was started")


def test_a_worker_killed_mid_shard_changes_nothing(slow):
    run = slow / "killed" / "run"
    process = subprocess.Popen(dask_command(slow, "killed", "run.executor.workers=2", "run.executor.shard_size=192"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    os.kill(wait_for_shard(run, process), signal.SIGKILL)
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    assert_same_run(slow / "outputs/one", run)
    log = (run / "run.log").read_text(encoding="utf-8")
    assert "ran again after a worker died while running it (1 time); its result is the retry's" in log
    with h5py.File(run / "activations.h5", "r") as store:
        assert store["pairs/m/d"].attrs["shards"] == 7  # 1200 rows in shards of 192


def bad_png(path: Path) -> None:
    """A PNG whose chunks and checksums are valid (``Image.verify`` passes, as in the plan's check) but whose
    pixel data does not inflate: found only when a worker decodes it."""
    import io
    import struct
    import zlib

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 7, dtype=np.uint8)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    at = data.find(b"IDAT")
    length = struct.unpack(">I", data[at - 4 : at])[0]
    body = bytes(data[at + 4 : at + 6]) + bytes(length - 2)  # the zlib header, then no valid deflate stream
    data[at + 4 : at + 4 + length] = body
    data[at + 4 + length : at + 8 + length] = struct.pack(">I", zlib.crc32(b"IDAT" + body) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))


def test_bad_data_in_a_shard_is_the_one_process_error_and_leaves_nothing(tmp_path, capsys, demo_cache):
    from PIL import Image

    for label in ("a", "b"):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(20):
            Image.fromarray(np.full((8, 8, 3), 9 * i, dtype=np.uint8)).save(tmp_path / "images" / label / f"{i}.png")
    bad_png(tmp_path / "images" / "b" / "13.png")
    keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2, name="dense")]).save(
        tmp_path / "model.keras")
    write_pipeline(tmp_path, {"run": {"name": "one"}, "models": [{"name": "m", "path": "model.keras"}],
                              "datasets": [{"name": "pets", "path": "images", "batch_size": 8}]})
    code, out, one = run_cli(capsys, "run", str(tmp_path / "pipeline.yaml"), "--quiet")
    assert (code, out) == (2, "") and one == f"error: {tmp_path / 'images/b/13.png'}: cannot read image: broken " \
                                             "data stream when reading image file\n"
    code, out, err = dask_run(tmp_path, "dask", "run.executor.workers=2", "run.executor.shard_size=8", quiet=True)
    assert (code, out, err) == (2, "", one)
    for run in (tmp_path / "outputs/one", tmp_path / "dask/run"):  # the log of what happened, nothing else
        assert sorted(path.name for path in run.iterdir()) == [".deeprep.lock", "run.log"]
    assert "ERROR" in (tmp_path / "dask/run/run.log").read_text(encoding="utf-8")


@contextmanager
def dask_cluster(folder: Path) -> Iterator[tuple[str, subprocess.Popen, subprocess.Popen]]:
    """A ``dask scheduler`` and two single-threaded ``dask worker`` processes started as docs/cluster.md says:
    (the scheduler's address, its process, the workers' process)."""
    dask = str(Path(sys.executable).with_name("dask"))
    env = {**os.environ, "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1"}
    logs = open(folder / "dask.log", "w")
    started = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                 "--scheduler-file", str(folder / "scheduler.json")], stdout=logs, stderr=logs, env=env)]
    deadline = time.monotonic() + 60
    while not (folder / "scheduler.json").exists():
        assert time.monotonic() < deadline and started[0].poll() is None, (folder / "dask.log").read_text()
        time.sleep(0.1)
    time.sleep(0.2)  # the file is written in one go, but give it a moment
    address = json.loads((folder / "scheduler.json").read_text())["address"]
    started.append(subprocess.Popen([dask, "worker", address, "--nworkers", "2", "--nthreads", "1", "--no-dashboard"],
                                    stdout=logs, stderr=logs, env=env, cwd=folder, start_new_session=True))
    try:
        import distributed

        with distributed.Client(address, timeout=30) as client:  # both joined: the tests count them
            client.wait_for_workers(2, timeout=120)
        yield address, started[0], started[1]
    finally:
        for process in reversed(started):
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        logs.close()


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, subprocess.Popen, subprocess.Popen]]:
    with dask_cluster(tmp_path_factory.mktemp("dask")) as started:
        yield started


def test_separately_started_scheduler_and_workers_store_what_one_process_stores(project, scheduler):
    address = scheduler[0]
    code, out, err = dask_run(project, "external", "run.executor.workers=2", "run.executor.shard_size=64",
                              address=address, quiet=True)
    assert (code, err) == (0, ""), err
    run = project / "external/run"
    assert out == verdict_line(run) + "\n"
    assert_same_run(project / "outputs/one", run)
    with h5py.File(run / "activations.h5", "r") as store:
        assert all(worker.startswith("tcp://127.0.0.1:") for worker in json.loads(store["pairs/t/s"].attrs["workers"]))


def test_an_unreachable_scheduler_or_too_few_workers_is_exit_3(project, scheduler, capsys):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = ["run", str(project / "pipeline.yaml"), "--quiet", "--out", str(project / "unreachable/run")]
    code, out, err = run_cli(capsys, *base, "--dask", f"tcp://127.0.0.1:{port}", "--set", "run.executor.timeout=2")
    assert (code, out) == (3, "") and err.count("\n") == 1, err
    assert err.startswith(f"error: cannot reach the Dask scheduler at tcp://127.0.0.1:{port} within 2 s "
                          "(run.executor.address, --dask): ")
    code, out, err = run_cli(capsys, *base, "--dask", scheduler[0], "--set", "run.executor.timeout=2",
                             "--set", "run.executor.workers=5")
    assert (code, out, err) == (3, "", f"error: the Dask scheduler at {scheduler[0]} has 2 of the 5 workers asked "
                                       "for (run.executor.workers) after 2 s\n")
    assert sorted(path.name for path in (project / "unreachable/run").iterdir()) == [".deeprep.lock", "run.log"]


def test_a_lost_scheduler_is_exit_3_and_leaves_no_run(slow, tmp_path):
    with dask_cluster(tmp_path) as (address, process, _):
        _lose_the_scheduler(slow, address, process)


def test_workers_that_all_leave_end_the_run_after_the_timeout(slow, tmp_path):
    """Dask would keep the shards waiting for workers forever; a scheduled job must end."""
    with dask_cluster(tmp_path) as (address, _, workers):
        run = slow / "abandoned" / "run"
        running = subprocess.Popen(dask_command(slow, "abandoned", "run.executor.workers=2",
                                                "run.executor.shard_size=96", "run.executor.timeout=4",
                                                address=address, quiet=True),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
        wait_for_shard(run, running)
        os.killpg(workers.pid, signal.SIGKILL)  # the workers' supervisor, its nannies and worker processes
        out, err = running.communicate(timeout=300)
    assert (running.returncode, out) == (3, ""), err
    assert err == (f"error: the Dask scheduler at {address} has had no workers for 4 s (run.executor.timeout) while "
                   "shards wait: they left or died; start workers and run again\n")
    assert sorted(path.name for path in run.iterdir()) == [".deeprep.lock", "run.log"]


def _lose_the_scheduler(slow: Path, address: str, process: subprocess.Popen) -> None:
    run = slow / "lost" / "run"
    running = subprocess.Popen(dask_command(slow, "lost", "run.executor.workers=2", "run.executor.shard_size=96",
                                            "run.executor.timeout=10", address=address, quiet=True),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    wait_for_shard(run, running)
    process.kill()
    out, err = running.communicate(timeout=300)
    assert (running.returncode, out) == (3, ""), err
    assert err.startswith(f"error: lost the Dask scheduler at {address} (") and err.count("\n") == 1, err
    assert err.endswith("); the run folder is unchanged\n")
    assert sorted(path.name for path in run.iterdir()) == [".deeprep.lock", "run.log"]


def test_a_worker_that_cannot_see_the_run_folder_says_so(project):
    """The shard's folder missing on the worker (the run folder not on a shared file system): one clear line."""
    from deeprep_report.config import load_config
    from deeprep_report.errors import ClusterError
    from deeprep_report.extract.cluster.coordinator import _task
    from deeprep_report.extract.cluster.worker import run_shard
    from deeprep_report.extract.plan import make_plan

    plan = make_plan(load_config(project / "pipeline.yaml"))
    pair = next(pair for pair in plan.pairs if pair.model.name == "m")
    missing = project / "not-mounted" / "shards"
    task = _task(plan, pair, [], 0, 16, missing / "0-0.h5", "20261204T000000Z-0", "host")
    with pytest.raises(ClusterError) as raised:
        run_shard(task)  # in this process: the check comes before anything is loaded
    assert str(raised.value) == (f"Dask worker pid {os.getpid()} cannot see the run's shard folder {missing}: the "
                                 "run folder must be on a file system every worker mounts at the same path "
                                 "(docs/cluster.md)")


def test_models_built_in_code_send_their_weights_to_the_workers(project, tmp_path):
    """A factory's (seeded) random initialisation is not reproducible in a Dask worker: the shard task carries the
    coordinator's weights file; a model read from a file needs none."""
    from deeprep_report.config import load_config
    from deeprep_report.extract.cluster.coordinator import _task
    from deeprep_report.extract.plan import make_plan

    plan = make_plan(load_config(project / "pipeline.yaml"))
    pairs = {pair.model.name: pair for pair in plan.pairs}
    task = _task(plan, pairs["f"], [], 0, 16, tmp_path / "0-0.h5", "20261204T000000Z-1", "host")
    assert task.weights == str(tmp_path / "f.weights.h5")
    coordinator = pairs["f"].model.loaded.model
    rebuilt = keras.models.clone_model(coordinator)
    rebuilt.load_weights(task.weights)
    for theirs, ours in zip(rebuilt.weights, coordinator.weights, strict=True):
        np.testing.assert_array_equal(theirs.numpy(), ours.numpy())
    assert _task(plan, pairs["m"], [], 0, 16, tmp_path / "0-0.h5", "20261204T000000Z-1", "host").weights is None
    twin = _task(plan, pairs["m@random"], [], 0, 16, tmp_path / "0-0.h5", "20261204T000000Z-1", "host")
    assert twin.weights == str(tmp_path / "m@random.weights.h5")  # the twin: its own random weights
