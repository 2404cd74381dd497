"""deeprep-report: audit what a Keras model has learned, layer by layer.

The pipeline has four stages, one module each: ``config`` (validate the
pipeline file), ``plan`` (load models and datasets, resolve layers), ``extract``
(stream batches through the model into HDF5 while accumulating statistics) and
``analyze`` (turn the stored accumulators into statistics and ``summary.json``).
"""

__version__ = "0.1.0"
