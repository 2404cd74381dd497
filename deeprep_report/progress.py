"""Progress for long work: a bar on a terminal, a few plain log lines otherwise.

Scheduled jobs capture stderr into log files, where a redrawn bar is noise;
there we log at most every ``interval`` seconds (and once at the end).
"""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType

log = logging.getLogger("deeprep")


class Progress:
    """Count samples through a stage; ``with Progress(total, label) as p: p.advance(n)``."""

    def __init__(self, total: int, label: str, bar: bool | None = None, interval: float = 30.0,
                 unit: str = "sample") -> None:
        self.total = total
        self.label = label
        self.unit = unit
        self.done = 0
        self.first: tuple[int, float] | None = None  # (count, seconds) of the first step: warm-up (tracing, JIT)
        self.interval = interval
        self._bar = None
        use_bar = sys.stderr.isatty() if bar is None else bar
        if use_bar:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=label, unit=unit, unit_scale=unit == "sample", leave=False,
                             dynamic_ncols=True, file=sys.stderr)

    def __enter__(self) -> "Progress":
        self.started = self._last = time.perf_counter()
        return self

    def advance(self, count: int) -> None:
        self.done += count
        if self.first is None:
            self.first = (self.done, time.perf_counter() - self.started)
        if self._bar is not None:
            self._bar.update(count)
            return
        now = time.perf_counter()
        if now - self._last >= self.interval and self.done < self.total:
            self._last = now
            log.info("%s: %d/%d %ss (%.1f %ss/s)", self.label, self.done, self.total, self.unit, self.rate, self.unit)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def steady_rate(self) -> float:
        """The rate after the first step, which includes one-off warm-up (a compiled forward function's tracing,
        numba's first call); the overall rate when there was only one step."""
        if self.first is None or self.first[0] >= self.done:
            return self.rate
        count, seconds = self.first
        rest = self.elapsed - seconds
        return (self.done - count) / rest if rest > 0 else self.rate

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.close()
        if kind is None and self.unit == "sample":
            log.info("%s: %d samples in %.1f s (%.0f samples/s)", self.label, self.done, self.elapsed, self.rate)
