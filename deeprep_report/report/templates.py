"""The Jinja2 environment of every page: the shipped templates (top-level ``templates/``, installed as
``deeprep_report.templates``), a user's ``report.template_dir`` first, autoescaping on, and the
"rendered at" time (``SOURCE_DATE_EPOCH`` for reproducible bytes).

The environment is Jinja's immutable sandbox: a template reaches only the data it is given, never Python
internals (``cycler.__init__.__globals__``) or methods that change it. Templates are still trusted input
(docs/security.md) — the sandbox is the second wall, the first is that a run folder's stored
``template_dir`` is never used (:func:`deeprep_report.report.render.render`)."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import jinja2
import jinja2.sandbox

from deeprep_report.config import ReportSection
from deeprep_report.errors import UserError
from deeprep_report.report.formatting import number, percent


def template_environment(settings: ReportSection) -> jinja2.sandbox.ImmutableSandboxedEnvironment:
    """Jinja2 with autoescaping; ``report.template_dir`` first, then the shipped templates."""
    folders = []
    if settings.template_dir is not None:
        folder = Path(settings.template_dir)
        if not folder.is_dir():
            raise UserError(f"report.template_dir: no such folder {settings.template_dir!r}")
        folders.append(str(folder))
    folders.append(str(shipped_templates()))
    environment = jinja2.sandbox.ImmutableSandboxedEnvironment(
                                     loader=jinja2.FileSystemLoader(folders), autoescape=True,
                                     undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                                     keep_trailing_newline=True)
    environment.filters["number"] = number
    environment.filters["percent"] = percent
    return environment


def shipped_templates() -> Path:
    """The templates installed in the package (``deeprep_report/templates``), or the top-level ``templates/``
    of a source checkout (an editable install maps the package there)."""
    here = Path(__file__).resolve().parent.parent
    installed = here / "templates"
    return installed if (installed / "report.html.j2").is_file() else here.parent / "templates"


def rendered_at() -> str:
    """UTC time of rendering, or ``SOURCE_DATE_EPOCH`` when set (reproducible builds)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = datetime.fromtimestamp(int(epoch), timezone.utc) if epoch else datetime.now(timezone.utc)
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")
