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

import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import jinja2
import yaml

from deeprep_report import __version__
from deeprep_report.config import Pipeline, ReportSection, apply_override, validate
from deeprep_report.errors import UserError
from deeprep_report.report_content import build, number, percent
from deeprep_report.runindex import INDEX, write_pairs_index
from deeprep_report.store import StoreReader
from deeprep_report.summary import READABLE_VERSIONS

log = logging.getLogger("deeprep")
REPORT = "report.html"


def render(run_dir: Path, overrides: Sequence[str] = ()) -> Path:
    """Write ``run_dir/report.html`` (atomically) and return its path."""
    run_dir = Path(run_dir)
    summary = load_summary(run_dir)
    with open_store(run_dir) as store:
        settings = stored_settings(store, run_dir, overrides)
        environment = template_environment(settings)
        context = build(summary, store, settings)
    html = environment.get_template("report.html.j2").render(**context, rendered_at=rendered_at(),
                                                               tool_version=__version__)
    target = run_dir / REPORT
    temporary = run_dir / f".{REPORT}.{os.getpid()}.tmp"
    temporary.write_text(html, encoding="utf-8")
    os.replace(temporary, target)
    if len(context["pairs"]) > 1:
        write_pairs_index(run_dir, summary, {(p["model"], p["dataset"]): p["id"] for p in context["pairs"]},
                          environment)
    elif (run_dir / INDEX).exists():
        (run_dir / INDEX).unlink()  # left by an earlier render of a run with several pairs
    size = target.stat().st_size / 1e6
    log.info("report.html: %.1f MB. %s", size, context["verdict"]["text"])
    if size > settings.size_budget_mb:
        log.warning("report.html is %.1f MB, over report.size_budget_mb (%.1f MB): show fewer layers "
                    "(report.layers) or smaller galleries (report.gallery)", size, settings.size_budget_mb)
    return target


def open_store(run_dir: Path) -> StoreReader:
    """A finished run's activations.h5 for reading, or a one-line error saying why it cannot be read."""
    store_path = Path(run_dir) / "activations.h5"
    if not store_path.is_file():
        raise UserError(f"{run_dir}: no activations.h5, so there is nothing to work from")
    try:
        return StoreReader(store_path)
    except (OSError, ValueError) as exc:
        raise UserError(f"{store_path}: cannot read the store: {exc}") from None


def load_summary(run_dir: Path) -> dict:
    """A finished run's summary.json, or a one-line error saying why it cannot be read."""
    path = run_dir / "summary.json"
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run folder")
    if not path.is_file():
        raise UserError(f"{run_dir}: no summary.json, so this is not a finished run")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not readable JSON: {exc}") from None
    if summary.get("schema_version") not in READABLE_VERSIONS:
        raise UserError(f"{path}: summary schema version {summary.get('schema_version')!r}; this deeprep "
                        f"{__version__} renders versions {', '.join(map(str, READABLE_VERSIONS))}")
    return summary


def stored_settings(store: StoreReader, run_dir: Path, overrides: Sequence[str] = ()) -> ReportSection:
    """The report settings of the config stored with the run, after ``--set report.x=y`` overrides."""
    return stored_pipeline(store, run_dir, overrides).report


def stored_pipeline(store: StoreReader, run_dir: Path, overrides: Sequence[str] = ()) -> Pipeline:
    """The resolved config stored with the run (what ``deeprep check`` and ``render`` work from)."""
    raw = yaml.safe_load(store.attrs().get("config", "")) or {}
    applied = [apply_override(raw, item) for item in overrides]
    return validate(raw, f"{run_dir}/pipeline.yaml", applied)


def template_environment(settings: ReportSection) -> jinja2.Environment:
    """Jinja2 with autoescaping; ``report.template_dir`` first, then the shipped templates."""
    folders = []
    if settings.template_dir is not None:
        folder = Path(settings.template_dir)
        if not folder.is_dir():
            raise UserError(f"report.template_dir: no such folder {settings.template_dir!r}")
        folders.append(str(folder))
    folders.append(str(shipped_templates()))
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(folders), autoescape=True,
                                     undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                                     keep_trailing_newline=True)
    environment.filters["number"] = number
    environment.filters["percent"] = percent
    return environment


def shipped_templates() -> Path:
    """The templates installed beside this module, or the top-level ``templates/`` of a source checkout
    (an editable install maps the package there)."""
    here = Path(__file__).resolve().parent
    installed = here / "templates"
    return installed if (installed / "report.html.j2").is_file() else here.parent / "templates"


def rendered_at() -> str:
    """UTC time of rendering, or ``SOURCE_DATE_EPOCH`` when set (reproducible builds)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = datetime.fromtimestamp(int(epoch), timezone.utc) if epoch else datetime.now(timezone.utc)
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")
