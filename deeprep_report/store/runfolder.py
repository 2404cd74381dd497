"""A run folder that is only ever the old run or the new one, written by one process at a time.

A command that writes a run folder (``run``, ``check``, ``render``) holds its
lock (:mod:`.lock`), writes into a hidden staging folder inside it (same file
system, so renames are atomic) and publishes in two steps:

1. **Commit**: every staged file and a ``manifest.json`` (the run id, the
   files in publishing order, the older files to remove) and the new marker are fsynced, then
   the staging folder is renamed to ``.deeprep-publish-<run id>``: one rename
   decides that the new run replaces the old one.
2. **Apply**: ``summary.json`` is removed first, the files are moved into
   place, ``.deeprep-run.json`` (the marker: run id, the files deeprep owns)
   is replaced and ``summary.json`` moved in last; then the folder is fsynced.

A kill before the commit leaves the old run (the staging folder is removed by
the next command). A kill after it leaves a committed folder that the next
command on this run folder applies before anything else (roll forward), and
until then no ``summary.json``, so nothing takes the folder for a finished
run; readers that do not write (a baseline, ``deeprep index``) refuse it.
Every file carries the run id, and :func:`check_one_run` refuses a folder
whose files do not agree. Only files the marker lists are ever removed, so
files deeprep did not write are never touched.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from pathlib import Path
from types import TracebackType

from deeprep_report.errors import UserError
from deeprep_report.store.lock import LOCK, FolderLock

STAGING_PREFIX = ".deeprep-partial-"
COMMITTED_PREFIX = ".deeprep-publish-"
MARKER = ".deeprep-run.json"
MANIFEST = "manifest.json"
SUMMARY = "summary.json"


def new_run_id() -> str:
    """``20261202T101500Z-3f9a1c2e``: sortable, and unique without coordination."""
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{secrets.token_hex(4)}"


class RunFolder:
    """``with RunFolder(path, run_id, "run") as folder: folder.staged(name) ...; folder.publish([...])``."""

    def __init__(self, path: Path, run_id: str, command: str = "run") -> None:
        self.path = Path(path)
        self.run_id = run_id
        self.stage = self.path / f"{STAGING_PREFIX}{secrets.token_hex(6)}"
        self.lock = FolderLock(self.path, command)
        self.published = False

    def __enter__(self) -> "RunFolder":
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"{self.path}: exists and is not a folder")
        self.path.mkdir(parents=True, exist_ok=True)
        self.lock.__enter__()
        try:
            settle(self.path)
            self.stage.mkdir()
        except BaseException:
            self.lock.__exit__(None, None, None)
            raise
        return self

    def staged(self, name: str) -> Path:
        return self.stage / name

    def publish(self, names: list[str]) -> None:
        """Publish the staged files of ``names`` (in that order; ``summary.json`` goes last whatever its place).
        A name this run did not stage is removed from the folder if an earlier deeprep run wrote it."""
        owned = owned_files(self.path, names)
        files = [name for name in names if (self.stage / name).exists()]
        remove = [name for name in names if name not in files and name in owned]
        marker = {"run_id": self.run_id, "files": sorted((set(owned) | set(files)) - set(remove))}
        (self.stage / MARKER).write_text(json.dumps(marker), encoding="utf-8")
        manifest = {"run_id": self.run_id, "files": files, "remove": remove}
        (self.stage / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
        for name in [*files, MARKER, MANIFEST]:
            _fsync_file(self.stage / name)
        _fsync_folder(self.stage)
        committed = self.path / f"{COMMITTED_PREFIX}{self.run_id}"
        os.rename(self.stage, committed)  # the commit: from here on the new run is the folder's run
        _fsync_folder(self.path)
        self.published = True
        _apply(self.path, committed)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if not self.published and self.stage.exists():
                log_file = self.stage / "run.log"
                if log_file.exists():  # the failed attempt's log, so its traceback can be read
                    os.replace(log_file, self.path / "run.log")
                shutil.rmtree(self.stage, ignore_errors=True)
        finally:
            self.lock.__exit__(kind, error, tb)


def settle(folder: Path) -> None:
    """Finish what a killed command left (with the folder's lock held): apply a committed publish, remove
    staging folders (their writer is gone: a live one would hold the lock)."""
    for committed in sorted(folder.glob(f"{COMMITTED_PREFIX}*")):
        if (committed / MANIFEST).is_file():
            _apply(folder, committed)
        else:
            shutil.rmtree(committed, ignore_errors=True)
    for staging in folder.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(staging, ignore_errors=True)


def _apply(folder: Path, committed: Path) -> None:
    """Move a committed run's files into place; safe to repeat after a kill at any step."""
    manifest = json.loads((committed / MANIFEST).read_text(encoding="utf-8"))
    if (committed / SUMMARY).exists():
        (folder / SUMMARY).unlink(missing_ok=True)  # from here until the end the folder is not "finished"
        _fsync_folder(folder)
    for name in manifest["files"]:
        if name != SUMMARY and (committed / name).exists():
            os.replace(committed / name, folder / name)
    for name in manifest["remove"]:
        (folder / name).unlink(missing_ok=True)
    if (committed / MARKER).exists():
        os.replace(committed / MARKER, folder / MARKER)
    if (committed / SUMMARY).exists():
        os.replace(committed / SUMMARY, folder / SUMMARY)
    _fsync_folder(folder)
    shutil.rmtree(committed, ignore_errors=True)


def owned_files(folder: Path, names: list[str]) -> list[str]:
    """The files of ``folder`` an earlier deeprep command wrote: the marker's list; for a folder from before
    the marker, ``names`` if it holds a deeprep summary.json; otherwise none."""
    marker = read_marker(folder)
    if marker is not None:
        return [str(name) for name in marker.get("files", [])]
    return list(names) if _legacy_run_folder(folder) else []


def read_marker(folder: Path) -> dict | None:
    """The folder's ``.deeprep-run.json`` (run id and owned files), or None when it has none or it is not JSON."""
    try:
        marker = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def is_run_folder(folder: Path) -> bool:
    """Whether deeprep may write into ``folder`` without ``--force``: new, empty, or written by deeprep before."""
    folder = Path(folder)
    if not folder.exists() or not any(folder.iterdir()):
        return True
    return (folder / MARKER).exists() or (folder / LOCK).exists() or _legacy_run_folder(folder)


def _legacy_run_folder(folder: Path) -> bool:
    try:
        head = (folder / SUMMARY).read_text(encoding="utf-8")[:200]
    except (OSError, UnicodeDecodeError):
        return False
    return '"schema": "deeprep-summary"' in head


def unfinished_publish(folder: Path) -> str | None:
    """Why a run folder cannot be read as it stands (a publish killed half-way), or None."""
    pending = sorted(Path(folder).glob(f"{COMMITTED_PREFIX}*"))
    if not pending:
        return None
    return (f"publishing run {pending[0].name[len(COMMITTED_PREFIX):]} was interrupted (or is under way); "
            f"'deeprep render {folder}' finishes it")


def check_one_run(folder: Path, ids: dict[str, str | None]) -> None:
    """Refuse a folder whose files name different runs: ``ids`` maps a file to the run id it carries (None
    for files from before run ids); the marker's id is added when there is one."""
    marker = read_marker(folder)
    if marker is not None and marker.get("run_id"):
        ids = {**ids, MARKER: str(marker["run_id"])}
    named = {name: run_id for name, run_id in ids.items() if run_id is not None}
    if len(set(named.values())) > 1 or (named and len(named) < len(ids)):
        listing = ", ".join(f"{name}: {run_id or 'no run id'}" for name, run_id in ids.items())
        raise UserError(f"{folder}: its files belong to different runs ({listing}); run the pipeline again to "
                        f"write a whole run")


def _fsync_file(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_folder(path: Path) -> None:
    """Make renames in ``path`` durable (a no-op where the platform cannot open folders)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def write_atomic(path: Path, text: str) -> None:
    """Write a text file atomically: a temporary file in the same folder, then a rename over ``path``."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        exc.filename = exc.filename or str(path)  # a failed write() names no file: say which one
        raise
    finally:
        temporary.unlink(missing_ok=True)


def display_path(path: Path) -> str:
    """``path`` relative to the working folder when it is inside it (shorter log and stdout lines)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
