"""Logging for a command: terse lines on stderr, everything with timestamps in ``run.log``.

Records are buffered from the start of the command, because the run folder
(and so ``run.log``) only exists once the input has been validated; attaching
the file replays the buffer into it. The console holds its lines back the same
way until the input is known good, so bad input shows exactly one line on
stderr: the error.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

LOGGER = "deeprep"
_FILE_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"


class RunLog(logging.Handler):
    """Buffers records until :meth:`attach` names the file, then writes straight through."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter(_FILE_FORMAT))
        self.buffer: list[logging.LogRecord] = []
        self.stream = None
        self.lost = False  # a write to run.log failed (disk full): later records are dropped
        self.path: Path | None = None

    def attach(self, path: Path, final_path: Path | None = None) -> None:
        """Write to ``path`` from now on; ``final_path`` is where the file will end up (for messages)."""
        self.path, self.lost = final_path or path, False
        self.stream = open(path, "a", encoding="utf-8")
        for record in self.buffer:
            self.stream.write(self.format(record) + "\n")
        self.buffer.clear()
        self.stream.flush()

    def detach(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            try:
                stream.close()
            except OSError:  # the disk filled up: the run fails on its own error, not on its log's
                pass

    def emit(self, record: logging.LogRecord) -> None:
        if self.stream is None:
            self.buffer.append(record)
            return
        if self.lost:
            return
        try:
            self.stream.write(self.format(record) + "\n")
            self.stream.flush()
        except OSError:  # run.log's disk is full or gone: the records after this are dropped, not raised
            self.lost = True

    def note(self, message: str, error: BaseException | None = None) -> None:
        """Record an error in the log file only (stderr gets the CLI's one-line message instead)."""
        exc_info = (type(error), error, error.__traceback__) if error is not None else None
        self.handle(logging.getLogger(LOGGER).makeRecord(LOGGER, logging.ERROR, __file__, 0, message, (), exc_info))

    def dump(self, path: Path) -> None:
        """Write what is buffered to ``path`` (a failure before the run folder existed)."""
        with open(path, "w", encoding="utf-8") as handle:
            for record in self.buffer:
                handle.write(self.format(record) + "\n")


class HeldConsole(logging.StreamHandler):
    """A stderr handler that keeps records until :meth:`release` (and drops them if never released)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.held: list[logging.LogRecord] | None = []

    def emit(self, record: logging.LogRecord) -> None:
        if self.held is not None:
            self.held.append(record)
        else:
            super().emit(record)

    def show_held(self) -> None:
        held, self.held = self.held or [], None
        for record in held:
            super().emit(record)


def console() -> HeldConsole | None:
    """The console handler installed by :func:`setup`, if any."""
    for handler in logging.getLogger(LOGGER).handlers:
        if isinstance(handler, HeldConsole):
            return handler
    return None


def release_console() -> None:
    """The input is valid: show what was held back and print from now on."""
    handler = console()
    if handler is not None:
        handler.show_held()


def setup(quiet: bool = False, debug: bool = False) -> RunLog:
    """Configure the ``deeprep`` logger for one command; returns the run-log handler."""
    logger = logging.getLogger(LOGGER)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    stderr = HeldConsole()
    stderr.setLevel(logging.DEBUG if debug else (logging.WARNING if quiet else logging.INFO))
    stderr.setFormatter(logging.Formatter("%(message)s" if sys.stderr.isatty() else _FILE_FORMAT))
    if debug:
        stderr.show_held()
    logger.addHandler(stderr)
    run_log = RunLog()
    logger.addHandler(run_log)
    logging.captureWarnings(True)
    warnings_logger = logging.getLogger("py.warnings")
    warnings_logger.handlers = [run_log]
    warnings_logger.propagate = False
    return run_log
