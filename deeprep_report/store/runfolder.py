"""A run folder whose finished files appear atomically.

A run writes into a hidden staging folder inside the run folder (same file
system, so renames are atomic) and moves each finished file into place at the
end, ``summary.json`` last: its presence means the run completed. A run that
fails or is killed leaves the previous run's files untouched; a failure still
publishes its ``run.log`` so the traceback can be read. Staging folders of
killed runs are removed by the next run in the same folder.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from types import TracebackType

from deeprep_report.errors import UserError

STAGING_PREFIX = ".deeprep-partial-"


class RunFolder:
    """``with RunFolder(path) as folder: folder.staged(name) ...; folder.publish([...])``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.stage = self.path / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        self.published = False

    def __enter__(self) -> "RunFolder":
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"{self.path}: exists and is not a folder")
        self.path.mkdir(parents=True, exist_ok=True)
        _remove_abandoned(self.path)
        self.stage.mkdir()
        return self

    def staged(self, name: str) -> Path:
        return self.stage / name

    def publish(self, names: list[str]) -> None:
        """Move the staged files of ``names`` into the run folder in the given order (put the completion
        marker last); a file of ``names`` this run did not write is removed (it belongs to an older run)."""
        for name in names:
            if (self.stage / name).exists():
                os.replace(self.stage / name, self.path / name)
            elif (self.path / name).exists():
                (self.path / name).unlink()
        shutil.rmtree(self.stage, ignore_errors=True)
        self.published = True

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if not self.published and self.stage.exists():
            log_file = self.stage / "run.log"
            if log_file.exists():
                os.replace(log_file, self.path / "run.log")
            shutil.rmtree(self.stage, ignore_errors=True)


def _remove_abandoned(folder: Path) -> None:
    """Delete staging folders whose process is gone (a run killed before it could clean up)."""
    for candidate in folder.glob(f"{STAGING_PREFIX}*"):
        try:
            pid = int(candidate.name[len(STAGING_PREFIX):].split("-")[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _alive(pid):
            shutil.rmtree(candidate, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_atomic(path: Path, text: str) -> None:
    """Write a text file atomically: a temporary file in the same folder, then a rename over ``path``."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def display_path(path: Path) -> str:
    """``path`` relative to the working folder when it is inside it (shorter log and stdout lines)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
