"""The ``audit`` stage: checks (and the comparison with a baseline) become the run's verdict.

Shared by ``deeprep run`` (after the analysis, before rendering) and
``deeprep check RUN_DIR`` (on a stored run, without TensorFlow): both call
:func:`audit`, write ``summary.json`` and ``summary.md``, then render. The
verdict line printed on stdout and the exit code come from the same
:class:`~deeprep_report.audit.verdict.Verdict`.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from deeprep_report.audit.checks import default_checks, evaluate, summarise
from deeprep_report.audit.verdict import FAIL, Verdict, verdict_of
from deeprep_report.config import Check, Pipeline

log = logging.getLogger("deeprep")


def audit(summary: dict[str, Any], pipeline: Pipeline, comparison: dict[str, Any] | None) -> Verdict:
    """Evaluate the pipeline's checks (or the default set) and put ``checks`` and ``comparison`` into ``summary``."""
    summary["comparison"] = comparison
    defaults = pipeline.checks is None
    checks: Sequence[Check] = (default_checks(summary, comparison, pipeline.analysis.transfer.dataset) if defaults
                               else pipeline.checks)
    results = evaluate(checks, summary, comparison)
    summary["checks"] = summarise(checks, defaults, results)
    verdict = verdict_of(summary)
    log.info("checks: %d passed, %d failed, %d warnings, %d not evaluated", verdict.passed, verdict.failed,
             verdict.warnings, verdict.not_evaluated)
    for result in results:
        if result.status != "pass":
            log.info("  %s %s %s × %s / %s: %s", result.status.upper() if result.status == FAIL else result.status,
                     result.rule, result.model, result.dataset, result.layer or "-", result.detail)
    return verdict
