"""Cutting a pair's rows into shards: whole batches, in sample order, each a self-contained task for a worker.

A shard is a run of whole batches, so every sample goes through the forward
pass in the same batch as in one process and its pooled values, views and maps
are bit-identical; only the running statistics differ in summation order, and
they merge exactly (:mod:`deeprep_report.extract.cluster.merge`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deeprep_report.config import Config
from deeprep_report.extract.tokens import PairTokens
from deeprep_report.store import full_rows

#: Shards per worker when ``shard_size: auto``: enough to keep every worker busy while one is slow, few enough
#: that per-shard costs (opening a file, the first batch) stay small.
SHARDS_PER_WORKER = 4


@dataclass(frozen=True)
class ShardTask:
    """Everything a worker needs to extract rows ``[start, stop)`` of one pair into its own shard file.

    Small and picklable: the model and the dataset are loaded by the worker (once per worker, from the same
    config), only their fingerprints travel to check the worker sees the same files."""

    run_id: str
    config: Config
    model_index: int
    model_name: str
    model_fingerprint: str
    layers: tuple[str, ...]
    preprocess: str | None
    weights: str | None  # the coordinator's weights file: random twins and models built in code load it
    data_index: int
    data_fingerprint: str
    rows: np.ndarray  # the shard's dataset rows, in sample order
    batch_size: int
    binding: dict[str, str]
    tokens: PairTokens | None
    new_inputs: tuple[str, ...]  # dataset arrays this pair stores (the first pair that reads them)
    start: int  # the shard's first sample position in the pair
    path: str  # where the finished shard file goes
    reduce: str

    @property
    def key(self) -> str:
        """The Dask key: unique per run, pair and shard (a retry of the same shard reuses it)."""
        return f"deeprep-{self.run_id}-{Path(self.path).stem}"


def check_shard_size(config: Config) -> None:
    """``run.executor.shard_size`` must be whole batches of every dataset: said by the plan, before any work."""
    setting = config.pipeline.run.executor.shard_size
    if config.pipeline.run.executor.kind != "dask" or setting == "auto":
        return
    sizes = sorted({spec.batch_size for spec in config.pipeline.datasets})
    unit = math.lcm(*sizes)
    if setting % unit:
        low, high = max(unit, setting // unit * unit), (setting // unit + 1) * unit
        raise config.error("run.executor.shard_size", f"{setting} rows is not a whole number of batches of every "
                           f"dataset (batch_size {', '.join(map(str, sizes))}): a shard is whole batches, so that "
                           f"every sample is computed as in one process; use {low} or {high}")


def shard_size(setting: int | str, batch_size: int, rows: int, workers: int) -> int:
    """Rows per shard of a pair: ``run.executor.shard_size`` (checked by :func:`check_shard_size`), or for
    ``auto`` about :data:`SHARDS_PER_WORKER` shards per worker, rounded up to whole batches."""
    if setting != "auto":
        return int(setting)
    wanted = max(1, math.ceil(rows / (SHARDS_PER_WORKER * max(1, workers))))
    return batch_size * max(1, math.ceil(wanted / batch_size))


def bounds(rows: int, size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of every shard of ``rows`` samples, in order; the last one may be short."""
    return [(start, min(start + size, rows)) for start in range(0, rows, size)]


def shard_tokens(tokens: PairTokens | None, start: int, stop: int) -> PairTokens | None:
    """The pair's tokens for samples ``[start, stop)``, sample positions counted from the shard's first sample
    (the token sample is drawn over the whole pair by the coordinator, so it is the same as in one process)."""
    if tokens is None:
        return None
    low, high = np.searchsorted(tokens.positions[:, 0], [start, stop])
    positions = tokens.positions[low:high] - np.array([start, 0], dtype=tokens.positions.dtype)
    content = tokens.content[start:stop] if tokens.content is not None else None
    return dataclasses.replace(tokens, ids=tokens.ids[start:stop], mask=tokens.mask[start:stop],
                               positions=positions, content=content)


def shard_store_settings(settings: Any, start: int, count: int) -> Any:
    """The store settings of a shard: full maps only of the pair's first ``full_samples`` samples, and no
    compression (the merge writes the run's store with the configured filter)."""
    kept = max(0, full_rows(settings, start + count) - start)
    return settings.model_copy(update={"full_samples": kept, "compression": None})

