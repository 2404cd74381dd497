"""Error types that map to the CLI's exit codes.

A :class:`UserError` is bad input (config, model file, dataset, layer name,
shapes): the CLI prints its one-line message and exits 2. So is a fault of
the machine (disk full, read-only folder, permission denied), through
:func:`fault_error`. Anything else that escapes a command is a bug and exits 3.
"""

from __future__ import annotations

import difflib
import errno
import os
import re
from typing import Sequence


class UserError(Exception):
    """Bad input the user can fix; the message is one line naming where."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class ConfigError(UserError):
    """A problem at a field of the pipeline file: ``file: field.path: what``."""

    def __init__(self, source: str, field: str, message: str) -> None:
        self.source = source
        self.field = field
        self.detail = message
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {message}")

    def __reduce__(self) -> tuple:
        """Picklable (a Dask worker's error travels to the coordinator) although it takes three arguments."""
        return (type(self), (self.source, self.field, self.detail))


class ClusterError(Exception):
    """The Dask cluster failed the run (a lost scheduler, workers that keep dying): one line, exit 3."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


def first_line(error: BaseException, limit: int = 300) -> str:
    """Shorten a third-party exception to one line for a user-facing message."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def did_you_mean(key: str, choices: Sequence[str], allowed_list: bool = False) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or the list of choices when asked, or ''."""
    close = difflib.get_close_matches(key, list(choices), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    if allowed_list and choices:
        return f"; expected one of: {', '.join(choices)}"
    return ""



#: What the machine, not the input, can make fail: a full disk or quota, a read-only or forbidden folder.
FAULT_ERRNOS = {errno.ENOSPC: "free some space or write elsewhere (--out)",
                errno.EDQUOT: "free some space or write elsewhere (--out)",
                errno.EFBIG: "the file is over the size this file system or ulimit allows; write elsewhere (--out)",
                errno.EROFS: "the file system is read-only; write elsewhere (--out)",
                errno.EACCES: "check the folder's permissions or write elsewhere (--out)",
                errno.EPERM: "check the folder's permissions or write elsewhere (--out)"}


def fault_error(error: BaseException, hidden_prefix: str = "") -> UserError | None:
    """A disk-full, read-only or permission failure as one line naming the file, or None for anything else.

    HDF5 reports these as ``OSError``/``RuntimeError`` whose text carries ``errno = N`` and
    ``filename = '...'`` instead of the attributes Python's own errors have, so both are read. A path part
    starting with ``hidden_prefix`` (the staging folder) is left out of the name."""
    if not isinstance(error, (OSError, RuntimeError)):
        return None
    text = str(error)
    code = getattr(error, "errno", None)
    found = re.search(r"errno = (\d+)", text)
    if found:
        code = int(found.group(1))
    if code not in FAULT_ERRNOS:
        return None
    filename = getattr(error, "filename", None)
    named = re.search(r"filename = '([^']+)'", text)
    if named:
        filename = named.group(1)
    if filename and hidden_prefix:  # the file where it would have been published
        filename = re.sub(rf"[/\\]{re.escape(hidden_prefix)}[^/\\]+", "", str(filename))
    where = f"cannot write {filename}" if filename else "cannot write the run folder"
    return UserError(f"{where}: {os.strerror(code)}; {FAULT_ERRNOS[code]}")
