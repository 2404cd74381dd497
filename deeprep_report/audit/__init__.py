"""The ``audit`` stage: checks, the comparison with a baseline run, the verdict and the findings.

Reads only ``summary.json`` and the stores (no TensorFlow), so ``deeprep check``
re-evaluates a stored run. ``audit`` is the entry point; ``checks`` evaluates
the rules, ``verdict`` holds results and the verdict, ``compare`` compares with
a baseline, ``markdown`` writes ``summary.md``, ``findings`` lists what a
reviewer should look at.
"""
