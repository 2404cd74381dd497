"""Representation analysis, one module per family: probes, CKA, geometry, class structure, and the
sentences written from them; ``depth`` runs them over a stored run."""
