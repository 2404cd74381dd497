"""The ``render`` stage: ``report.html`` from a run folder's ``summary.json`` and ``activations.h5`` alone.

No TensorFlow and no model: the report can be rebuilt years later from the two
files. Templates are Jinja2 with autoescaping on (every name is data); the
shipped ones live in the top-level ``templates/`` folder and are installed as
``deeprep_report.templates``; ``report.template_dir`` puts a folder of
replacements first in the search path. The output is one self-contained file:
CSS inline, figures as PNG data URIs, no scripts, fonts or network requests.
Two renders of the same run differ only in the "rendered at" line, which
honours ``SOURCE_DATE_EPOCH``.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Sequence

import jinja2

from deeprep_report import __version__
from deeprep_report.config import ReportSection
from deeprep_report.config.overrides import parse_field_path
from deeprep_report.errors import UserError
from deeprep_report.report.index import write_pairs_index
from deeprep_report.report.sections import build
from deeprep_report.report.templates import rendered_at, template_environment
from deeprep_report.store import StoreReader, open_run, stored_pipeline, write_atomic

log = logging.getLogger("deeprep")
REPORT = "report.html"


def render(run_dir: Path, overrides: Sequence[str] = (), template_dir: str | None = None, into: Path | None = None,
           opened: tuple[dict[str, Any], StoreReader] | None = None, target: Path | None = None) -> Path:
    """Write ``report.html`` of the run in ``run_dir`` into ``into`` (default: ``run_dir``; a staging folder
    when the caller publishes it) and return its path; a run with several pairs also gets an ``index.html``
    of its pairs there. ``target`` instead names a variant report file (``render --out``), written alone.
    ``opened`` is the run's ``(summary, store)`` when the caller has them open already (``deeprep check``,
    with its re-evaluated summary); it keeps the store open.

    The run folder is untrusted, so the ``report.template_dir`` stored in it is not used: templates come from
    ``template_dir`` (the pipeline of the user's own ``deeprep run``) or from ``--set report.template_dir=``
    on the user's own command line; otherwise the shipped ones.
    """
    run_dir = Path(run_dir)
    if opened is None:
        summary, store = open_run(run_dir)
        with store:
            return _render_open(run_dir, summary, store, overrides, template_dir, into, target)
    return _render_open(run_dir, *opened, overrides, template_dir, into, target)


def _render_open(run_dir: Path, summary: dict[str, Any], store: StoreReader, overrides: Sequence[str],
                 template_dir: str | None, into: Path | None, variant: Path | None) -> Path:
    settings = _trusted_templates(stored_settings(store, run_dir, overrides), overrides, template_dir)
    environment = template_environment(settings)
    started = time.perf_counter()
    context = build(summary, store, settings)
    try:
        html = environment.get_template("report.html.j2").render(**context, rendered_at=rendered_at(),
                                                                   drawn_seconds=drawn_seconds(started),
                                                                   tool_version=__version__,
                                                                   run_id=summary["run"].get("id", ""))
    except jinja2.exceptions.SecurityError as exc:
        raise UserError(f"report.template_dir {settings.template_dir}: a template did something the sandbox "
                        f"refuses: {exc}") from None
    except jinja2.exceptions.TemplateError as exc:
        if settings.template_dir is None:
            raise  # the shipped templates: a bug, not bad input
        raise UserError(f"report.template_dir {settings.template_dir}: {type(exc).__name__}: {exc} (a replaced "
                        "template must define what the shipped one does: docs/report.md)") from None
    target = variant or Path(into or run_dir) / REPORT
    write_atomic(target, html)
    if len(context["pairs"]) > 1 and variant is not None:
        log.info("no pairs index for a report written with --out (its links name the run's report.html)")
    elif len(context["pairs"]) > 1:
        write_pairs_index(target.parent, summary, {(p["model"], p["dataset"]): p["id"] for p in context["pairs"]},
                          environment)
    size = target.stat().st_size / 1e6
    log.info("%s: %.1f MB. %s", target.name, size, context["verdict"]["text"])
    if size > settings.size_budget_mb:
        log.warning("report.html is %.1f MB, over report.size_budget_mb (%.1f MB): show fewer layers "
                    "(report.layers) or smaller galleries (report.gallery)", size, settings.size_budget_mb)
    return target


def drawn_seconds(started: float) -> float | None:
    """How long this report took to draw, for its header; None under ``SOURCE_DATE_EPOCH`` (a reproducible
    build has no timings that change between renders)."""
    return None if os.environ.get("SOURCE_DATE_EPOCH") else time.perf_counter() - started


def _trusted_templates(settings: ReportSection, overrides: Sequence[str], template_dir: str | None) -> ReportSection:
    """The settings with only a trusted ``template_dir``: the caller's, one given with ``--set``, or none."""
    if any(parse_field_path(item.partition("=")[0].strip()) == ("report", "template_dir") for item in overrides):
        return settings
    if settings.template_dir is not None and template_dir is None:
        log.warning("the run folder's report.template_dir %s is not used (a run folder is untrusted input); pass "
                    "--set report.template_dir=%s to render with it", settings.template_dir, settings.template_dir)
    return settings.model_copy(update={"template_dir": template_dir})


def stored_settings(store: StoreReader, run_dir: Path, overrides: Sequence[str] = ()) -> ReportSection:
    """The report settings of the config stored with the run, after ``--set report.x=y`` overrides."""
    return stored_pipeline(store, run_dir, overrides).report
