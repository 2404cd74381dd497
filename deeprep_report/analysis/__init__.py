"""The ``analyze`` stage: per-unit statistics and the depth analysis, from the store alone (no TensorFlow).

``analyze`` is the entry point: unit statistics into the store, the summary's
datasets, models and pairs. The depth analysis has one module per family
(``probes``, ``cka``, ``geometry``, ``classes``) and the sentences written from
them (``interpret``); ``depth`` runs them over every stored pair.
"""
