"""One deeprep process at a time per run folder: an exclusive ``flock`` on ``RUN/.deeprep.lock``.

The kernel holds the lock for the process and drops it when the process ends,
however it ends (``kill -9`` included), so a lock is never stale: a left-over
lock file is not a held lock, whoever wrote it and in whatever PID namespace.
That is why liveness is not judged by the PID written in the file; the PID,
host and command are there only to name the holder in the refusal. Two
containers on one host share the kernel and so the lock; on a network file
system it is as good as the file system's ``flock`` (NFSv4 passes it to the
server).
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
from pathlib import Path
from types import TracebackType
from typing import IO

from deeprep_report.errors import UserError
from deeprep_report.store.provenance import utc_now

LOCK = ".deeprep.lock"
log = logging.getLogger("deeprep")


class FolderLock:
    """``with FolderLock(folder, "run"):`` — or a one-line :class:`UserError` naming the process that holds it."""

    def __init__(self, folder: Path, command: str) -> None:
        self.path = Path(folder) / LOCK
        self.command = command
        self.handle: IO[str] | None = None

    def __enter__(self) -> "FolderLock":
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = _describe(handle.read())
            handle.close()
            raise UserError(f"{self.path.parent}: another deeprep process is writing this run folder ({holder}); "
                            f"wait for it to finish, or write to another folder (--out)") from None
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                handle.close()
                raise
            log.warning("%s: this file system cannot lock files (%s); a second deeprep process writing this "
                        "folder at the same time would not be noticed", self.path.parent, os.strerror(exc.errno))
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                                 "since": utc_now()}))
        handle.flush()
        self.handle = handle
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.handle is not None:
            self.handle.close()  # closing the file releases the lock
            self.handle = None


def _describe(text: str) -> str:
    """``deeprep run, pid 12 on host ci-3, since 2026-12-02T10:00:00Z`` from the holder's lock file."""
    try:
        holder = json.loads(text)
        return (f"deeprep {holder['command']}, pid {holder['pid']} on host {holder['host']}, "
                f"since {holder['since']}")
    except (ValueError, KeyError, TypeError):
        return "holder unknown"
