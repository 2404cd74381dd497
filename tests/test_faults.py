"""Faults of the machine and of the run folder (issue 13): a full disk, a read-only folder, a damaged store,
files of two runs, a folder another process is writing. Each is one line on stderr and exit 2, and nothing
half-written is left that looks finished."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from deeprep_report.cli import main
from deeprep_report.extract import kernels
from deeprep_report.store.lock import LOCK, FolderLock
from deeprep_report.store.runfolder import MARKER, STAGING_PREFIX


def copy_run(small_run: Path, target: Path) -> Path:
    shutil.copytree(small_run, target)
    return target


def damage_first_layer(store: Path) -> None:
    """Overwrite the object header of the first layer's group: the kind of damage HDF5 finds only on reading."""
    with h5py.File(store, "r") as file:
        group = file["pairs/m/d/layers"]
        address = h5py.h5o.get_info(group[next(iter(group))].id).addr
    with open(store, "r+b") as raw:
        raw.seek(address)
        raw.write(bytes(range(256)))


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err[len("error: "):].rstrip("\n")


def test_a_damaged_store_is_one_line_naming_it_in_render_check_and_as_a_baseline(small_run, tmp_path, capsys):
    damaged = copy_run(small_run, tmp_path / "damaged")
    damage_first_layer(damaged / "activations.h5")
    expected = (f"{damaged / 'activations.h5'}: cannot read the store (the file is damaged, or deeprep did not "
                f"write it): Unable to synchronously open object")
    before = {path.name: path.stat().st_mtime_ns for path in damaged.iterdir() if path.name != LOCK}
    capsys.readouterr()
    for command in (["render", str(damaged), "--quiet"], ["check", str(damaged), "--quiet"]):
        assert main(command) == 2
        assert one_error_line(capsys).startswith(expected)
    assert {path.name: path.stat().st_mtime_ns for path in damaged.iterdir()
            if path.name != LOCK} == before  # nothing republished
    out = tmp_path / "next"
    pipeline = small_run.parents[1] / "pipeline.yaml"
    assert main(["run", str(pipeline), "--quiet", "--out", str(out), "--baseline", str(damaged)]) == 2
    assert one_error_line(capsys).startswith(f"{damaged / 'activations.h5'}: cannot read the store (the file is "
                                             "damaged, or deeprep did not write it): ")
    assert not (out / "summary.json").exists() and not list(out.glob(f"{STAGING_PREFIX}*"))


def test_files_of_two_runs_are_refused(small_run, tmp_path, capsys):
    mixed = copy_run(small_run, tmp_path / "mixed")
    run_id = json.loads((mixed / "summary.json").read_text())["run"]["id"]
    with h5py.File(mixed / "activations.h5", "r+") as store:
        store.attrs["run_id"] = "20261201T000000Z-00000000"  # the store of an earlier run
    capsys.readouterr()
    assert main(["render", str(mixed), "--quiet"]) == 2
    assert one_error_line(capsys) == (f"{mixed}: its files belong to different runs (summary.json: {run_id}, "
                                      f"activations.h5: 20261201T000000Z-00000000, {MARKER}: {run_id}); run the "
                                      f"pipeline again to write a whole run")


def test_a_run_from_before_checks_is_refused_by_check_and_left_alone(small_run, tmp_path, capsys):
    """A schema-2 folder (no run ids yet, no checks): render still reads it, check says why it cannot."""
    old = copy_run(small_run, tmp_path / "old")
    summary = json.loads((old / "summary.json").read_text(encoding="utf-8"))
    summary["schema_version"] = 2
    del summary["run"]["id"]
    (old / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    with h5py.File(old / "activations.h5", "r+") as store:
        del store.attrs["run_id"]
    (old / MARKER).unlink()
    before = (old / "summary.json").read_bytes()
    capsys.readouterr()
    assert main(["check", str(old), "--quiet"]) == 2
    assert one_error_line(capsys) == (f"{old}/summary.json: schema version 2 predates checks; run the pipeline "
                                      f"again with this deeprep to check it")
    assert (old / "summary.json").read_bytes() == before
    assert main(["render", str(old), "--quiet"]) == 0


def test_a_folder_another_process_writes_is_refused_and_left_alone(small_run, tmp_path, capsys):
    busy = copy_run(small_run, tmp_path / "busy")
    (busy / MARKER).unlink()  # whatever the holder is doing, it is not this command's to settle
    before = sorted(path.name for path in busy.iterdir())
    capsys.readouterr()
    with FolderLock(busy, "run"):
        assert main(["check", str(busy), "--quiet"]) == 2
        line = one_error_line(capsys)
    assert line.startswith(f"{busy}: another deeprep process is writing this run folder (deeprep run, pid "
                           f"{os.getpid()} on host "), line
    assert sorted(path.name for path in busy.iterdir()) == before


@pytest.fixture
def tmpfs(tmp_path):
    """``tmpfs(size)``: a tmpfs of our own (root only: skipped where mounting is not permitted)."""
    mounted = []

    def mount(size: str) -> Path:
        folder = tmp_path / f"tmpfs{len(mounted)}"
        folder.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True).returncode != 0:
            pytest.skip("mounting a tmpfs is not permitted here")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def test_a_full_disk_is_one_line_and_leaves_nothing_behind(small_run, tmpfs):
    """HDF5 segfaulted at exit after a failed write (87 lines of tracebacks, exit 139); now one line, exit 2."""
    out = tmpfs("64k") / "run"
    result = subprocess.run([sys.executable, "-m", "deeprep_report", "run", str(small_run.parents[1] / "pipeline.yaml"),
                             "--quiet", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert (result.returncode, result.stdout) == (2, ""), result.stderr
    # h5py's finalizers report the failed writes of every open object too: those go to run.log, not here
    assert result.stderr == (f"error: cannot write {out / 'activations.h5'}: No space left on device; free some "
                             f"space or write elsewhere (--out)\n")
    assert not (out / "summary.json").exists() and not list(out.glob(f"{STAGING_PREFIX}*"))


def test_a_read_only_folder_is_one_line(small_run, tmpfs, capsys):
    mount = tmpfs("8m")
    frozen = copy_run(small_run, mount / "frozen")
    (frozen / "report.html").write_text("old report")
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
    capsys.readouterr()
    assert main(["render", str(frozen), "--quiet"]) == 2
    assert one_error_line(capsys) == (f"cannot write {frozen / '.deeprep.lock'}: Read-only file system; the file "
                                      f"system is read-only; write elsewhere (--out)")
    assert (frozen / "report.html").read_text() == "old report"


def test_numba_caches_where_it_can_write_else_compiles_each_run(tmp_path, monkeypatch):
    blocked = tmp_path / "a-file"
    blocked.write_text("")  # a folder below a file can never be made, even by root
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    assert kernels._cache_folder([tmp_path / "package"], tmp_path / "tmp") and "NUMBA_CACHE_DIR" not in os.environ
    assert kernels._cache_folder([blocked / "package", blocked / "home"], tmp_path / "tmp")
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "tmp")
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    assert not kernels._cache_folder([blocked / "package", blocked / "home"], blocked / "tmp")
    assert "NUMBA_CACHE_DIR" not in os.environ
