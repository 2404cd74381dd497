"""Drawing the report's matplotlib figures: in this process for a small report, in a pool of processes for
a big one.

Matplotlib draws under the GIL, so threads would not help; a figure is a pure
function of arrays (:class:`figures.Job`), so worker processes can draw it. A
worker costs ~1.5 s to start (it imports matplotlib), which a report of a few
dozen figures does not repay: the pool is used from ``POOL_FROM`` figures on.
Workers are spawned, not forked: ``deeprep run`` renders in a process that has
TensorFlow's threads running. A worker that dies leaves its figures to be drawn
here, as does a pool that cannot start; a figure that raises is a failure of that figure only.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Literal, Sequence

from deeprep_report.report import figures

log = logging.getLogger("deeprep")

#: Reports with at least this many figures draw them in a pool (measured: below it the pool's start-up costs
#: more than it saves on 2 cores).
POOL_FROM = 60
MAX_WORKERS = 8

#: A drawn figure (its data URI, the texts of it that reach outside its canvas), or why it could not be drawn.
Result = tuple[str, list[str]] | BaseException


def workers_for(count: int, setting: int | Literal["auto"]) -> int:
    """Processes to draw ``count`` figures with (1: in this process): never more than the usable cores,
    ``MAX_WORKERS`` or the figures (the setting may come from someone else's run folder)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if setting == "auto" and count < POOL_FROM:
        return 1
    wanted = cores if setting == "auto" else int(setting)
    return max(1, min(wanted, cores, MAX_WORKERS, count))


def draw_all(jobs: Sequence[figures.Job], workers: int) -> list[Result]:
    """Each figure's (data URI, clipped texts), or the exception that stopped it, in the order given."""
    if workers <= 1 or len(jobs) <= 1:
        return [_draw_here(job) for job in jobs]
    results: list[Result | None] = [None] * len(jobs)
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(figures.draw, job) for job in jobs]
            for index, future in enumerate(futures):
                try:
                    results[index] = future.result()
                except BrokenProcessPool:
                    raise
                except Exception as exc:  # noqa: BLE001 - one figure's failure is that figure's note
                    results[index] = exc
    except BrokenProcessPool as exc:
        log.warning("report: a figure-drawing process stopped (%s); drawing the rest here", exc)
    except Exception as exc:  # noqa: BLE001 - no pool here (no semaphores, a daemon process): draw in this one
        log.warning("report: no process pool for the figures (%s: %s); drawing them here", type(exc).__name__, exc)
    return [result if result is not None else _draw_here(job) for job, result in zip(jobs, results)]


def _draw_here(job: figures.Job) -> Result:
    try:
        return figures.draw(job)
    except Exception as exc:  # noqa: BLE001 - one figure's failure is that figure's note
        return exc
