"""The coordinator's side of a Dask run: a task per shard of every pair to extract, then each pair's shards
merged into the run's store, in pair order, as soon as all of them are done.

Shard files live in ``<staging folder>/shards/``: the workers write there (so it
must be on a file system they share with this process), the merge reads them,
and they go with the staging folder whether the run succeeds or fails, so a
failed or killed run leaves no shard files behind.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from deeprep_report.extract.cluster.executor import connect, reduce_mode, run_tasks
from deeprep_report.extract.cluster.shards import ShardTask, bounds, shard_size, shard_tokens
from deeprep_report.extract.plan import Pair, Plan
from deeprep_report.extract.forward import pair_attrs
from deeprep_report.store import StoreWriter, full_rows, h5_name, new_run_id, pair_key, utc_now
from deeprep_report.extract.cluster.merge import PairMerge

log = logging.getLogger("deeprep")


def extract_on_dask(plan: Plan, store: StoreWriter, todo: list[tuple[Pair, list[str]]], run_id: str,
                    reduce: str, bar: bool | None = None) -> None:
    """Extract every ``(pair, dataset arrays it stores)`` of ``todo`` as shards on the configured Dask cluster
    and merge them into ``store``; the results equal one process's (docs/design.md, "Running on Dask")."""
    executor = plan.config.pipeline.run.executor
    folder = Path(store.file.filename).absolute().parent / "shards"  # as given: the path workers must mount
    folder.mkdir()
    run_id = run_id or new_run_id()  # Dask keys must not collide with another run's on a shared scheduler
    with connect(executor) as client:
        workers = max(1, len(client.scheduler_info()["workers"]))
        reduce = reduce_mode(client, reduce, executor.address == "local")
        tasks: list[ShardTask] = []
        owners: list[int] = []  # the pair (index in todo) of every task
        for number, (pair, inputs) in enumerate(todo):
            size = shard_size(executor.shard_size, pair.data.batch_size, len(pair.data.rows), workers)
            for start, stop in bounds(len(pair.data.rows), size):
                tasks.append(_task(plan, pair, inputs, start, stop, folder / f"{number}-{start}.h5", run_id, reduce))
                owners.append(number)
        log.info("Dask: %d pairs in %d shards on %d workers", len(todo), len(tasks), workers)
        merger = _Merger(store, todo, tasks, owners, plan.config.pipeline.analysis.tokens.contexts)
        run_tasks(client, tasks, merger.done, executor, bar)
    shutil.rmtree(folder, ignore_errors=True)


def _task(plan: Plan, pair: Pair, inputs: list[str], start: int, stop: int, path: Path, run_id: str,
          reduce: str) -> ShardTask:
    model, data = pair.model, pair.data
    weights = None
    if model.baseline_of is not None or _built_in_code(plan, model.index):
        weights = path.parent / f"{h5_name(model.name)}.weights.h5"  # the workers load this model's weights
        if not weights.exists():
            model.loaded.model.save_weights(weights)
    return ShardTask(
        run_id=run_id, config=plan.config, model_index=model.index, model_name=model.name,
        model_fingerprint=model.loaded.fingerprint, layers=tuple(info.path for info in model.selected),
        preprocess=model.preprocess, weights=str(weights) if weights else None, data_index=data.index,
        data_fingerprint=data.fingerprint, rows=data.rows[start:stop], batch_size=data.batch_size,
        binding=pair.binding, tokens=shard_tokens(pair.tokens, start, stop), new_inputs=tuple(inputs), start=start,
        path=str(path), reduce=reduce)


def _built_in_code(plan: Plan, index: int) -> bool:
    """Whether ``models[index]`` is built by code (an application with ``weights: null``, a factory): seeded,
    but its random initialisation is not reproducible in a Dask worker, whose own threads draw from Python's
    ``random`` while the model is built (measured: MobileNetV2's weights differed on a worker's first build).
    Its workers load the coordinator's weights instead; models read from files load the same file."""
    spec = plan.config.pipeline.models[index]
    return bool(spec.application or spec.factory)


class _Merger:
    """Merges each pair's shards in shard order as they finish (a shard waits only for the ones before it), and
    completes a pair with its last shard. Runs in this thread only: the store has one writer."""

    def __init__(self, store: StoreWriter, todo: list[tuple[Pair, list[str]]], tasks: list[ShardTask],
                 owners: list[int], contexts: int) -> None:
        self.store, self.todo, self.tasks, self.owners, self.contexts = store, todo, tasks, owners, contexts
        self.order: dict[int, list[int]] = {}  # per pair: its tasks, in sample order
        for index, owner in enumerate(owners):
            self.order.setdefault(owner, []).append(index)
        self.merged = dict.fromkeys(self.order, 0)  # per pair: shards merged so far
        self.merges: dict[int, PairMerge] = {}
        self.merge_seconds = dict.fromkeys(self.order, 0.0)
        self.results: dict[int, dict[str, Any]] = {}

    def done(self, index: int, result: dict[str, Any]) -> None:
        self.results[index] = result
        number = self.owners[index]
        mine = self.order[number]
        while self.merged[number] < len(mine) and mine[self.merged[number]] in self.results:
            task = self.tasks[mine[self.merged[number]]]
            clock = time.perf_counter()
            self._merge(number).add(Path(task.path), task.start)
            Path(task.path).unlink()  # copied: the shard's disk space goes now, not at the end of the run
            self.merge_seconds[number] += time.perf_counter() - clock
            self.merged[number] += 1
        if self.merged[number] == len(mine) and number in self.merges:
            self._finish(number, mine)

    def _merge(self, number: int) -> PairMerge:
        if number not in self.merges:
            pair, inputs = self.todo[number]
            n = len(pair.data.rows)
            rows = {"maps": full_rows(self.store.settings, n),
                    "tokens": len(pair.tokens.positions) if pair.tokens is not None else 0}
            self.merges[number] = PairMerge(self.store, pair.model.name, pair.data.name, inputs, self.contexts, n,
                                            rows)
        return self.merges[number]

    def _finish(self, number: int, mine: list[int]) -> None:
        pair, _ = self.todo[number]
        model, data = pair.model.name, pair.data.name
        clock = time.perf_counter()
        self.merges.pop(number).finish()
        if pair.tokens is not None:
            self.store.write_tokens(pair_key(model, data), pair.tokens)
        merge_seconds = self.merge_seconds[number] + time.perf_counter() - clock
        results = [self.results[i] for i in mine]
        first = min(r["started"] for r in results)
        seconds = max(r["finished"] for r in results) - first
        self.store.set_attrs(pair_key(model, data), {
            **pair_attrs(pair, utc_now(first), seconds, len(pair.data.rows) / seconds if seconds > 0 else 0.0,
                         max(r["first_batch_seconds"] for r in results)),
            "shards": len(mine), "workers": sorted({r["worker"] for r in results}),
            "worker_seconds": sum(r["finished"] - r["started"] for r in results), "merge_seconds": merge_seconds,
        })
        log.info("%s × %s: %d samples in %d shards on %d workers in %.1f s, merged in %.1f s", model, data,
                 len(pair.data.rows), len(mine), len({r["worker"] for r in results}), seconds, merge_seconds)

