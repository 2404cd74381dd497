"""Import TensorFlow once, quietly.

TensorFlow's C++ runtime writes start-up notices straight to file descriptor 2
(oneDNN, CUDA probing) before its own log level applies. A scheduled job's
stderr must carry only our one-line errors, so those notices are captured
during import and device discovery and sent to the log file at DEBUG level.
``--debug`` leaves them on the terminal.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from types import ModuleType

log = logging.getLogger("deeprep")
_loaded: ModuleType | None = None


def import_tensorflow(quiet: bool = True) -> ModuleType:
    """Import and initialise TensorFlow and Keras; returns the ``tensorflow`` module."""
    global _loaded
    if _loaded is not None:
        return _loaded
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if not quiet:
        _loaded = _import()
        return _loaded
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            _loaded = _import()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        notices = sink.read().decode(errors="replace").strip()
    if notices:
        log.debug("TensorFlow start-up output:\n%s", notices)
    return _loaded


def _import() -> ModuleType:
    import tensorflow as tf

    tf.config.list_physical_devices()  # CUDA probing prints here, not at import
    tf.get_logger().setLevel(logging.ERROR)
    import keras  # noqa: F401 - initialise Keras under the same redirection

    return tf
