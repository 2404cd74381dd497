"""``deeprep check`` and ``deeprep render`` on a finished run folder, without TensorFlow.

The folder is untrusted input (docs/security.md): read as data, validated, its stored template folder
ignored. What each writes, and why:

- ``check`` republishes ``summary.json``, ``summary.md`` and ``report.html`` (and the pairs index) under the
  folder's lock and run id, so the folder never holds a report whose verdict differs from its summary's:
  with ``--no-render`` or ``report.enabled: false`` the old report is removed, not left stale.
- ``check --dry-run``, and ``check --set`` without ``--write`` (experimental settings, such as other
  thresholds), write nothing: the verdict and the results are printed only.
- ``render`` rebuilds the report in place; ``render --out FILE`` writes a variant report to FILE and leaves
  the run folder alone.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from deeprep_report.audit.audit import audit
from deeprep_report.audit.compare import compare
from deeprep_report.audit.markdown import MARKDOWN, write_markdown
from deeprep_report.audit.verdict import CheckResult, Verdict, results_of
from deeprep_report.config.schema import Pipeline
from deeprep_report.errors import UserError
from deeprep_report.report.index import INDEX
from deeprep_report.report.render import REPORT, render
from deeprep_report.store import (
    SUMMARY, RunFolder, StoreReader, display_path, new_run_id, open_baseline, open_run, read_marker,
    stored_pipeline, write_json,
)

log = logging.getLogger("deeprep")


@dataclass(frozen=True)
class Rechecked:
    """What ``deeprep check`` found: the verdict, its line (naming the file that shows it) and every result."""

    verdict: Verdict
    line: str
    results: list[CheckResult]
    written: list[str]  # the files republished; empty when nothing was written


def recheck(run_dir: Path, baseline: Path | None = None, overrides: Sequence[str] = (), write: bool = True,
            render_report: bool = True) -> Rechecked:
    """Re-evaluate a finished run's checks (against ``baseline`` when given, with the stored config's
    ``overrides``, e.g. other thresholds). ``write`` republishes the run's files (``render_report``: the report
    too, unless the stored ``report.enabled`` is false); otherwise nothing is written."""
    run_dir = _existing_run_folder(run_dir)
    if not write:
        summary, store = open_run(run_dir)
        with store:
            verdict, _ = _evaluate(run_dir, summary, store, baseline, overrides)
        log.info("nothing written (a dry run, or --set without --write)")
        shown = REPORT if (run_dir / REPORT).exists() else SUMMARY
        return Rechecked(verdict, verdict.line(display_path(run_dir / shown)), results_of(summary), [])
    with _republishing(run_dir, "check") as folder:
        summary, store = open_run(run_dir)
        with store:
            verdict, pipeline = _evaluate(run_dir, summary, store, baseline, overrides)
            rendered = render_report and pipeline.report.enabled
            where = display_path(run_dir / (REPORT if rendered else SUMMARY))
            write_json(folder.staged(SUMMARY), summary)
            write_markdown(folder.staged(MARKDOWN), summary, where)
            if rendered:
                render(run_dir, overrides, into=folder.stage, opened=(summary, store))
            elif (run_dir / REPORT).exists():
                log.warning("report.html removed: it showed the previous checks (not re-rendered: %s); "
                            "deeprep render %s writes it again", "--no-render" if not render_report
                            else "report.enabled is false", run_dir)
        files = [REPORT, INDEX, MARKDOWN, SUMMARY]  # an unstaged report and index are removed
        folder.publish(files)
    return Rechecked(verdict, verdict.line(where), results_of(summary), files if rendered else [MARKDOWN, SUMMARY])


def _evaluate(run_dir: Path, summary: dict[str, Any], store: StoreReader, baseline: Path | None,
              overrides: Sequence[str]) -> tuple[Verdict, Pipeline]:
    if summary["schema_version"] < 3:  # checks arrived with schema 3
        raise UserError(f"{run_dir}/summary.json: schema version {summary['schema_version']} predates "
                        f"checks; run the pipeline again with this deeprep to check it")
    pipeline = stored_pipeline(store, run_dir, overrides)
    comparison = summary.get("comparison")
    if baseline is not None:
        comparison = compare(store, summary, open_baseline(baseline), pipeline.analysis)
    return audit(summary, pipeline, comparison), pipeline


def rerender(run_dir: Path, overrides: Sequence[str] = (), out: Path | None = None) -> Path:
    """Rebuild a finished run's report.html (and its pairs index) in place, or write it to ``out`` only."""
    run_dir = _existing_run_folder(run_dir)
    if out is not None and Path(out).resolve() != (run_dir / REPORT).resolve():
        out = _variant_target(run_dir, Path(out))
        summary, store = open_run(run_dir)
        with store:
            return render(run_dir, overrides, opened=(summary, store), target=out)
    with _republishing(run_dir, "render") as folder:
        render(run_dir, overrides, into=folder.stage)
        folder.publish([REPORT, INDEX])
    return run_dir / REPORT


def _variant_target(run_dir: Path, out: Path) -> Path:
    """``render --out FILE``: a file outside the run folder (whose files are the run's), in a folder that exists."""
    if out.is_dir():
        raise UserError(f"--out {out}: a folder; name the report file, e.g. {out / 'report.html'}")
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: no folder {out.parent}")
    if run_dir.resolve() in out.resolve().parents:
        raise UserError(f"--out {out}: inside the run folder, whose files belong to the run; write the variant "
                        f"report elsewhere (or leave out --out to rebuild {run_dir / REPORT})")
    return out


def _existing_run_folder(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run folder")
    return run_dir


@contextmanager
def _republishing(run_dir: Path, command: str) -> Iterator[RunFolder]:
    """The run folder locked (a half-done publish finished first), for republishing some of its files under
    its own run id."""
    marker = read_marker(run_dir) or {}
    with RunFolder(run_dir, str(marker.get("run_id") or new_run_id()), command) as folder:
        yield folder
