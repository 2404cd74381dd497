"""Error types that map to the CLI's exit codes.

A :class:`UserError` is bad input (config, model file, dataset, layer name,
shapes): the CLI prints its one-line message and exits 2. Anything else that
escapes a command is a bug and exits 3.
"""

from __future__ import annotations

import difflib
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

