"""``summary.json``: strict RFC 8259 JSON, versioned, with a committed JSON Schema.

JSON has no NaN or Infinity. Every non-finite number is written as ``null``
(the summary says so in ``nonfinite_numbers``), and the encoder refuses
anything else that is not plain JSON, so a consumer never meets
``NaN`` literals that strict parsers reject.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from deeprep_report.store.runfolder import write_atomic

SCHEMA_ID = "deeprep-summary"
SCHEMA_VERSION = 9
#: Versions this tool can still read (render): 1 lacks the depth analysis, 2 the checks, 3 the analysis views,
#: 4 the masks and token analysis of sequence models, 5 the weights audit, 6 the unscaled-input list, 7 the
#: run id (``run.id``, also in every other file of the run folder), 8 how a pair was extracted on Dask
#: (``pairs[].dask``).
READABLE_VERSIONS = (1, 2, 3, 4, 5, 6, 7, 8, 9)
NONFINITE_NOTE = "NaN and +/-Infinity are written as null"


def random_twins(summary: dict[str, Any]) -> dict[str, str]:
    """Random-weights twin models of a summary (``<model>@random``) → the trained model each belongs to.

    Their pairs are comparison curves, never audited: no findings, checks or baseline comparison.
    """
    return {model["name"]: model["baseline_of"] for model in summary["models"] if model.get("baseline_of")}


def audited_pairs(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The pairs of trained models, in run order (random twins left out)."""
    twins = random_twins(summary)
    return [pair for pair in summary["pairs"] if pair["model"] not in twins]


def to_json_value(value: Any) -> Any:
    """Plain JSON data: numpy scalars and arrays unwrapped, non-finite floats as None."""
    if isinstance(value, dict):
        return {str(key): to_json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(item) for item in value]
    if isinstance(value, np.ndarray):
        return to_json_value(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else None
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"not JSON data: {type(value).__name__}")


def dumps(summary: dict[str, Any]) -> str:
    return json.dumps(to_json_value(summary), indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (temporary file in the same folder, then rename)."""
    write_atomic(path, dumps(data))


def schema() -> dict[str, Any]:
    """The JSON Schema that every ``summary.json`` of this version validates against."""
    text = resources.files("deeprep_report.store").joinpath("schemas/summary.schema.json").read_text(encoding="utf-8")
    return json.loads(text)
