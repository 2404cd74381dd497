"""The run folder is only ever the old run or the new one (issue 13): a publish killed between any two of its
renames settles to one whole run, and one process at a time writes a folder (its lock names the holder)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from deeprep_report.errors import UserError
from deeprep_report.store.lock import LOCK, FolderLock
from deeprep_report.store.runfolder import (
    COMMITTED_PREFIX, MARKER, STAGING_PREFIX, SUMMARY, RunFolder, check_one_run, is_run_folder, read_marker,
    unfinished_publish,
)

OLD = {"report.html": "old report", "activations.h5": "old store", "dropped.md": "old only", SUMMARY: "old summary"}
NEW = {"report.html": "new report", "activations.h5": "new store", SUMMARY: "new summary"}
NAMES = ["activations.h5", "dropped.md", "report.html", SUMMARY]

#: A child that publishes NEW over OLD and dies (``os._exit``, like ``kill -9``) just before its k-th rename.
CHILD = textwrap.dedent("""
    import os, sys
    from deeprep_report.store.runfolder import RunFolder
    folder, die_at, files = sys.argv[1], int(sys.argv[2]), eval(sys.argv[3])
    calls = [0]
    def dying(real):
        def rename(*args, **kwargs):
            calls[0] += 1
            if calls[0] == die_at:
                os._exit(9)
            return real(*args, **kwargs)
        return rename
    os.rename, os.replace = dying(os.rename), dying(os.replace)
    with RunFolder(folder, "new-id") as run:
        for name, text in files.items():
            run.staged(name).write_text(text)
        run.publish(%r)
    print(calls[0])
""" % NAMES)


def publish(folder: Path, files: dict[str, str], run_id: str) -> None:
    with RunFolder(folder, run_id) as run:
        for name, text in files.items():
            run.staged(name).write_text(text, encoding="utf-8")
        run.publish(NAMES)


def contents(folder: Path) -> dict[str, str]:
    """The visible files (what a reader sees), without deeprep's own bookkeeping files."""
    return {path.name: path.read_text(encoding="utf-8") for path in folder.iterdir()
            if path.is_file() and path.name not in (MARKER, LOCK)}


def publish_dying_at(folder: Path, rename: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CHILD, str(folder), str(rename), repr(NEW)],
                          capture_output=True, text=True, timeout=60)


def test_publish_replaces_the_run_and_removes_only_files_it_wrote(tmp_path):
    folder = tmp_path / "run"
    publish(folder, OLD, "old-id")
    (folder / "notes.txt").write_text("the user's", encoding="utf-8")
    publish(folder, NEW, "new-id")
    assert contents(folder) == {**NEW, "notes.txt": "the user's"}
    assert read_marker(folder) == {"run_id": "new-id", "files": sorted(NEW)}
    assert not [path for path in folder.iterdir() if path.name.startswith((STAGING_PREFIX, COMMITTED_PREFIX))]


def test_a_publish_killed_between_any_two_renames_settles_to_one_whole_run(tmp_path):
    publish(tmp_path / "count", OLD, "old-id")
    renames = int(publish_dying_at(tmp_path / "count", 0).stdout)  # a publish that does not die
    assert renames >= len(NEW) + 2  # the commit, each file, the marker
    for k in range(1, renames + 1):
        folder = tmp_path / f"k{k}"
        publish(folder, OLD, "old-id")
        assert publish_dying_at(folder, k).returncode == 9
        seen = contents(folder)
        if unfinished_publish(folder) is None:  # not yet committed: the old run, whole
            assert seen == OLD, k
        else:  # committed: readers refuse it, and nothing looks finished unless it is wholly the old run
            assert SUMMARY not in seen or seen == OLD, k
        with RunFolder(folder, "next-id"):  # the next command settles it first
            pass
        settled = contents(folder)
        assert settled in (OLD, NEW), (k, settled)
        marker = read_marker(folder)
        assert marker["run_id"] == ("new-id" if settled == NEW else "old-id"), k
        assert unfinished_publish(folder) is None
        assert not [path for path in folder.iterdir() if path.name.startswith((STAGING_PREFIX, COMMITTED_PREFIX))]


HOLDER = textwrap.dedent("""
    import sys, time
    from deeprep_report.store.runfolder import RunFolder
    with RunFolder(sys.argv[1], "holder-id", "run") as run:
        run.staged("activations.h5").write_text("being written")
        print(run.stage.name, flush=True)
        time.sleep(60)
""")


def test_a_second_writer_is_refused_naming_the_holder_and_never_touches_its_staging(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        stage = folder / holder.stdout.readline().strip()
        with pytest.raises(UserError) as refused:
            with RunFolder(folder, "second-id", "render"):
                pass
        message = str(refused.value)
        assert message.startswith(f"{folder}: another deeprep process is writing this run folder (deeprep run, "
                                  f"pid {holder.pid} on host "), message
        assert message.endswith("; wait for it to finish, or write to another folder (--out)")
        assert (stage / "activations.h5").read_text() == "being written"  # a live writer's staging is kept
    finally:
        holder.kill()
        holder.wait()
    with RunFolder(folder, "third-id"):  # the kernel dropped the lock with the process: nothing is stale
        assert not stage.exists()  # and the dead writer's staging is removed


def test_a_lock_file_left_behind_is_not_a_held_lock(tmp_path):
    (tmp_path / LOCK).write_text(json.dumps({"pid": 1, "host": "elsewhere", "command": "run", "since": "x"}))
    with FolderLock(tmp_path, "check") as lock:
        assert json.loads(lock.path.read_text())["command"] == "check"


def test_only_deeprep_folders_are_writable_without_force(tmp_path):
    assert is_run_folder(tmp_path / "new") and is_run_folder(tmp_path)
    (tmp_path / "thesis.tex").write_text("mine")
    assert not is_run_folder(tmp_path)
    (tmp_path / SUMMARY).write_text('{"schema": "deeprep-summary", "version": 7}')  # a run from before markers
    assert is_run_folder(tmp_path)


def test_files_of_different_runs_are_refused(tmp_path):
    publish(tmp_path, NEW, "new-id")
    check_one_run(tmp_path, {SUMMARY: "new-id", "activations.h5": "new-id"})
    with pytest.raises(UserError, match=rf"^{tmp_path}: its files belong to different runs \(summary.json: new-id, "
                                        r"activations.h5: old-id, .deeprep-run.json: new-id\); run the pipeline "
                                        r"again to write a whole run$"):
        check_one_run(tmp_path, {SUMMARY: "new-id", "activations.h5": "old-id"})
    with pytest.raises(UserError, match=r"activations.h5: no run id"):
        check_one_run(tmp_path, {SUMMARY: "new-id", "activations.h5": None})
