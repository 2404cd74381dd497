"""The extract stage on a Dask cluster (``run.executor.kind: dask``; docs/cluster.md).

``shards`` cuts every pair's rows into tasks, ``worker`` runs one on a Dask
worker (the same ``extract_pair`` as one process, into its own shard file),
``executor`` talks to Dask, and ``coordinator`` puts it together and merges
the shards into the run's store (:mod:`deeprep_report.extract.cluster.merge`).
"""
