"""deeprep-report: audit what a Keras model has learned, layer by layer.

One sub-package per stage of the pipeline, each importing only earlier ones:
``config`` (validate the pipeline file), ``sources`` (models and datasets),
``stats`` (the mergeable statistics), ``store`` (the run's files), ``extract``
(plan, then stream batches through the model into HDF5), ``analysis`` (unit
statistics, depth analysis), ``audit`` (checks, baseline, verdict) and
``report`` (report.html). ``runner`` runs them in order; ``cli`` is thin over it.
The layout and its rules: docs/design.md.
"""

__version__ = "0.1.0"
