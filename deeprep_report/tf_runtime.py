"""Import TensorFlow once, quietly.

TensorFlow's C++ runtime writes start-up notices straight to file descriptor 2
(oneDNN, CUDA probing) before its own log level applies. A scheduled job's
stderr must carry only our one-line errors, so those notices are captured
during import and device discovery and sent to the log file at DEBUG level.
``--debug`` leaves them on the terminal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from types import ModuleType
from typing import Any, Iterator

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


#: What TensorFlow accepts in a name scope: a Keras layer may be called anything (``<img …>``, spaces, ``ç``).
_SCOPE_FIRST = re.compile(r"[A-Za-z0-9.]")
_SCOPE_REST = re.compile(r"[^A-Za-z0-9_./-]")  # what a graph node name accepts (stricter than a scope)


def scope_name(name: str) -> str:
    """``name`` made a valid TensorFlow name scope (invalid characters become ``_``); the real name is kept
    everywhere a user sees it, only the graph's internal scope uses this."""
    safe = _SCOPE_REST.sub("_", name) or "_"
    return safe if _SCOPE_FIRST.match(safe) else "n" + safe  # a scope cannot start with _, / or -


@contextlib.contextmanager
def graph_safe_names() -> Iterator[None]:
    """While tracing a compiled forward pass: Keras opens a TensorFlow name scope named after each layer, which
    TensorFlow refuses for many names a Keras layer may carry; here the scope gets :func:`scope_name` instead."""
    from keras.src.backend.tensorflow import core

    tf = import_tensorflow()
    original = core.name_scope.__init__

    def patched(self: Any, name: str, **kwargs: Any) -> None:
        original(self, name, **kwargs)
        self._tf_name_scope = tf.name_scope(scope_name(name))

    core.name_scope.__init__ = patched
    try:
        yield
    finally:
        core.name_scope.__init__ = original
