"""The run's files: the HDF5 store ``activations.h5``, ``summary.json``, the atomically published run folder,
and reading a finished run back (for ``render``, ``check`` and as a baseline).

Only this package writes or reads the run's HDF5 layout (``activations`` writes
it, ``reader`` reads it); the extract stage writes through :class:`StoreWriter`,
every later stage reads through :class:`StoreReader`. Formats: docs/store.md, docs/summary.md.
"""

from deeprep_report.store.activations import (
    FORMAT, FORMAT_VERSION, LayerWriter, StoreWriter, full_rows, h5_name, layer_key, pair_key, read_rows,
)
from deeprep_report.store.reader import StoreReader
from deeprep_report.store.provenance import package_versions, platform_info, utc_now
from deeprep_report.store.runfolder import (
    MARKER, SUMMARY, RunFolder, display_path, is_run_folder, new_run_id, read_marker, write_atomic,
)
from deeprep_report.store.runs import (
    Baseline, damaged_store_error, data_difference, load_summary, match_pairs, open_baseline, open_run, open_store, read_summary,
    stored_pipeline,
)
from deeprep_report.store.summary import (
    NONFINITE_NOTE, READABLE_VERSIONS, SCHEMA_ID, SCHEMA_VERSION, audited_pairs, random_twins, to_json_value, write_json,
)

__all__ = [
    "FORMAT", "FORMAT_VERSION", "MARKER", "NONFINITE_NOTE", "SUMMARY", "is_run_folder", "new_run_id", "open_run",
    "read_marker", "READABLE_VERSIONS", "SCHEMA_ID", "SCHEMA_VERSION", "Baseline", "damaged_store_error",
    "LayerWriter", "RunFolder", "full_rows", "StoreReader", "StoreWriter", "audited_pairs", "data_difference", "display_path",
    "h5_name", "layer_key", "load_summary", "match_pairs", "open_baseline", "open_store", "read_summary", "package_versions", "pair_key",
    "platform_info", "random_twins", "read_rows", "stored_pipeline", "to_json_value", "utc_now", "write_atomic", "write_json",
]
