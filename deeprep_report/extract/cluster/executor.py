"""Running shard tasks on Dask: connecting (a local cluster for this run, or a scheduler's address),
submitting, showing progress, and turning Dask's failures into the CLI's one-line errors.

Dask does the scheduling, retries and worker supervision; this module only
says what happened. A worker that dies mid-shard is replaced by its nanny and
the scheduler runs the shard again elsewhere (its partial file is left under
a temporary name, removed with the staging folder); a shard that dies with
``distributed.scheduler.allowed-failures`` workers in a row, or a lost
scheduler, is a :class:`ClusterError` (exit 3). A shard's own error raised on
a worker (bad data: a :class:`UserError`; a full disk) fails the run as in one
process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from deeprep_report.extract.cluster.shards import ShardTask
from deeprep_report.extract.cluster.worker import release, resolve_on_worker, run_shard
from deeprep_report.errors import ClusterError, first_line
from deeprep_report.progress import Progress

log = logging.getLogger("deeprep")


@contextmanager
def connect(executor: Any) -> Iterator[Any]:
    """A ``distributed.Client`` for ``run.executor`` (kind dask), closed (with its local cluster) on exit."""
    import distributed

    _quiet_dask()
    cluster = None
    if executor.address == "local":
        workers = executor.workers or max(1, len(os.sched_getaffinity(0)))
        threads = str(max(1, len(os.sched_getaffinity(0)) // workers))  # the cores shared out, not oversubscribed
        env = {"TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": threads,
               "NUMBA_NUM_THREADS": threads, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=logging.CRITICAL, env=env)
        try:
            client = distributed.Client(cluster)
        except BaseException:
            cluster.close()
            raise
        log.info("Dask: a local cluster of %d worker processes (%s threads each)", workers, threads)
    else:
        try:
            client = distributed.Client(executor.address, timeout=executor.timeout)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"cannot reach the Dask scheduler at {executor.address} within {executor.timeout:g} s "
                               f"(run.executor.address, --dask): {first_line(exc)}") from None
        if executor.workers:
            try:
                client.wait_for_workers(executor.workers, timeout=executor.timeout)
            except TimeoutError:
                have = len(client.scheduler_info()["workers"])
                client.close()
                raise ClusterError(f"the Dask scheduler at {executor.address} has {have} of the "
                                   f"{executor.workers} workers asked for (run.executor.workers) after "
                                   f"{executor.timeout:g} s") from None
        log.info("Dask: scheduler %s, %d workers", executor.address, len(client.scheduler_info()["workers"]))
    try:
        yield client
        if cluster is None:  # a shared cluster: its workers let go of this run's models and files
            _quietly(lambda: client.run(release), "release the workers' models")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def reduce_mode(client: Any, setting: str, local: bool) -> str:
    """``extract.reduce`` resolved once for the whole run, so that every shard of a pair is reduced the same way:
    ``auto`` is what the workers' TensorFlow sees (this machine's for a local cluster); workers that disagree
    (GPUs on some) all reduce on the host, said in the log."""
    from deeprep_report.extract.device import resolve

    if setting != "auto" or local:
        return resolve(setting)
    modes = set(client.run(resolve_on_worker).values())
    if len(modes) == 1:
        return modes.pop()
    log.warning("extract.reduce auto: some Dask workers see a GPU and some do not; every shard is reduced on the "
                "host so that the shards of a pair agree (set extract.reduce: device to use the GPUs anyway)")
    return "host"


def _quietly(action: Callable[[], Any], what: str) -> None:
    """Clean-up that must not hide the error being raised (a client whose scheduler is gone refuses calls)."""
    try:
        action()
    except Exception as exc:  # noqa: BLE001 - best effort; the run's own outcome is already decided
        log.debug("could not %s: %s", what, first_line(exc))


def _quiet_dask() -> None:
    """Dask's own log lines off stderr (it sets levels on several loggers of its own): what goes wrong is said
    once, by the errors below, and the run log."""
    for name in [name for name in logging.root.manager.loggerDict if name.split(".")[0] == "distributed"]:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    logging.getLogger("distributed").setLevel(logging.CRITICAL)


def run_tasks(client: Any, tasks: list[ShardTask], done: Callable[[int, dict[str, Any]], None], executor: Any,
              bar: bool | None = None) -> None:
    """Run every task; ``done(i, result)`` is called in this process as task ``i`` finishes (in any order).

    While shards wait, a cluster left without workers for ``run.executor.timeout`` seconds fails the run (Dask
    would hold them forever: a nightly job must end). On a failure every other task is cancelled before the
    error is raised, so no worker starts another shard of a run that is being removed."""
    from distributed import wait

    futures = [client.submit(run_shard, task, key=task.key, retries=0) for task in tasks]
    index = {future.key: i for i, future in enumerate(futures)}
    pending, idle = set(futures), _Idle(client, executor)
    try:
        with Progress(len(tasks), f"shards on {executor.address}", bar=bar, unit="shard") as progress:
            while pending:
                try:
                    finished, pending = wait(pending, timeout=POLL_SECONDS, return_when="FIRST_COMPLETED")
                except TimeoutError:
                    idle.check()
                    continue
                except _LOST as exc:  # every future cancelled at once: the client lost the scheduler
                    raise _lost(executor.address, exc) from None
                for future in finished:
                    done(index[future.key], _result(future, executor.address))
                    progress.advance(1)
        _report_restarts(client, [task.key for task in tasks])
    except BaseException:
        _quietly(lambda: client.cancel(futures, force=True), "cancel the other shards")
        raise


#: How often the coordinator looks at the cluster while no shard finishes.
POLL_SECONDS = 2.0


class _Idle:
    """Counts how long the cluster has had no workers while shards wait."""

    def __init__(self, client: Any, executor: Any) -> None:
        self.client, self.executor, self.since = client, executor, None

    def check(self) -> None:
        import time

        if self.client.scheduler_info().get("workers"):
            self.since = None
            return
        now = time.monotonic()
        self.since = self.since if self.since is not None else now
        if now - self.since >= self.executor.timeout:
            raise ClusterError(f"the Dask scheduler at {self.executor.address} has had no workers for "
                               f"{self.executor.timeout:g} s (run.executor.timeout) while shards wait: they left "
                               "or died; start workers and run again")


#: What the client raises when it has lost the scheduler (distributed's Future(s)CancelledError are
#: concurrent.futures' CancelledError; CommClosedError is an OSError).
_LOST = (asyncio.CancelledError, concurrent.futures.CancelledError, OSError, TimeoutError)


def _lost(address: str, exc: BaseException) -> ClusterError:
    return ClusterError(f"lost the Dask scheduler at {address} ({type(exc).__name__}: {first_line(exc)}); the run "
                        "folder is unchanged")


def _result(future: Any, address: str) -> dict[str, Any]:
    """A finished future's result; Dask's failures as one-line errors."""
    from distributed import KilledWorker

    try:
        return future.result()
    except KilledWorker as exc:
        raise ClusterError(f"Dask workers kept dying while running shard {future.key} ({first_line(exc)}); see the "
                           "workers' logs (out of memory?)") from None
    except _LOST as exc:
        if future.status == "error":  # the shard's own error, raised on a worker (a full disk): as in one process
            raise
        raise _lost(address, exc) from None


def _report_restarts(client: Any, keys: list[str]) -> None:
    """Shards that ran again because a worker died while running them: said in the log, not silent."""
    def suspicious(dask_scheduler: Any, keys: list[str] = keys) -> dict[str, int]:
        return {key: dask_scheduler.tasks[key].suspicious for key in keys if key in dask_scheduler.tasks}

    try:
        counts = client.run_on_scheduler(suspicious)
    except Exception as exc:  # noqa: BLE001 - diagnostics only
        log.debug("could not ask the scheduler for restarted shards: %s", first_line(exc))
        return
    for key, count in sorted(counts.items()):
        if count:
            log.warning("shard %s ran again after a worker died while running it (%d time%s); its result is the "
                        "retry's", key, count, "" if count == 1 else "s")
