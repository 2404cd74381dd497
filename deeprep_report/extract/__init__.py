"""The ``plan`` and ``extract`` stages: load models and data, resolve layers, then stream every pair's data
through its tap model into the store.

``plan`` finds everything that can be wrong with the input before a run folder
exists (``deeprep validate`` stops there); ``graph`` replays a model's graph
into nested layer paths and builds the tap model; ``extract`` writes datasets,
models and pairs (``forward`` runs one pair, ``cache`` reuses a stored one);
``accumulate`` and ``kernels`` fold batches into exact streaming statistics.
Importing this package imports nothing heavy; ``plan``, ``graph`` and
``forward`` import Keras, so TensorFlow is imported first
(:func:`deeprep_report.tf_runtime.import_tensorflow`).
"""
