"""``deeprep run``: the stages in order (config -> plan -> extract -> analyze -> audit -> render), into an
atomically published run folder. ``deeprep check`` and ``render`` on a finished run: :mod:`.stored_run`.

The extract stage imports TensorFlow, so it is imported inside :func:`run_pipeline`."""

from __future__ import annotations

import hashlib
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from deeprep_report import __version__
from deeprep_report.analysis.analyze import analyze
from deeprep_report.audit.audit import audit
from deeprep_report.audit.compare import compare
from deeprep_report.audit.markdown import MARKDOWN, write_markdown
from deeprep_report.audit.verdict import Verdict
from deeprep_report.config import Config
from deeprep_report.errors import ClusterError, UserError
from deeprep_report.logs import RunLog, release_console
from deeprep_report.report.index import INDEX
from deeprep_report.report.render import REPORT, render
from deeprep_report.store import (
    MARKER, NONFINITE_NOTE, SCHEMA_ID, SCHEMA_VERSION, SUMMARY, RunFolder, StoreReader, StoreWriter, display_path,
    is_run_folder, new_run_id, package_versions, platform_info, to_json_value, utc_now, write_json,
)

log = logging.getLogger("deeprep")

#: Files of a finished run, in publishing order: summary.json last marks completion.
RUN_FILES = ("activations.h5", "pipeline.yaml", REPORT, INDEX, MARKDOWN, "run.log", SUMMARY)


@dataclass
class RunResult:
    path: Path
    summary: dict[str, Any]
    verdict: Verdict
    #: ``PASS 0 checks failed, 1 warning — outputs/digits-demo/report.html`` (the report, else summary.json)
    verdict_line: str


def run_folder_for(config: Config, out: Path | None) -> Path:
    """``--out DIR`` as given, else ``<run.output_dir>/<run.name>`` relative to the pipeline file."""
    if out is not None:
        return Path(out)
    run = config.pipeline.run
    return config.resolve(run.output_dir) / run.name


def run_pipeline(config: Config, run_log: RunLog, out: Path | None = None, bar: bool | None = None,
                 force: bool = False) -> RunResult:
    """Run every stage; on any exception the run folder keeps its previous files (plus the new run.log).

    ``force`` writes into a folder that is not a run folder, and re-extracts every pair even when a stored run
    in the output folder could be reused.
    """
    from deeprep_report.extract.plan import make_plan

    clock = time.perf_counter()
    started = utc_now()
    run_id = new_run_id()
    log.info("deeprep %s: run %r (id %s) from %s", __version__, config.pipeline.run.name, run_id, config.source)
    target = run_folder_for(config, out)
    _check_target(target, "--out" if out is not None else "run.output_dir/run.name", force, Path(config.source))
    plan = make_plan(config)
    release_console()
    timings = {"plan": time.perf_counter() - clock}
    resolved = config.to_yaml()
    with RunFolder(target, run_id) as folder, _logging_into(run_log, folder, target):
        log.info("run folder %s", target)
        store = folder.staged("activations.h5")
        mark = time.perf_counter()
        _extract_into(store, plan, started, resolved, run_id, bar, None if force else target.parent)
        timings["extract"] = time.perf_counter() - mark
        mark = time.perf_counter()
        results = analyze(store, config.pipeline.analysis, config.pipeline.run.seed, bar)
        timings["analyze"] = time.perf_counter() - mark
        folder.staged("pipeline.yaml").write_text(f"# deeprep run {run_id}\n{resolved}", encoding="utf-8")
        summary = _summary(config, target, run_id, started, timings, resolved, results)
        mark = time.perf_counter()
        comparison = _compare(store, summary, plan.baseline, config) if plan.baseline else None
        verdict = audit(summary, config.pipeline, comparison)
        summary["timings"]["audit"] = time.perf_counter() - mark
        summary["timings"]["total"] = summary["run"]["seconds"] = time.perf_counter() - clock
        write_json(folder.staged(SUMMARY), summary)
        where = display_path(target / (REPORT if config.pipeline.report.enabled else SUMMARY))
        write_markdown(folder.staged(MARKDOWN), summary, where)
        line = verdict.line(where)
        if config.pipeline.report.enabled:
            mark = time.perf_counter()
            render(folder.stage, template_dir=config.pipeline.report.template_dir)
            summary["timings"]["render"] = time.perf_counter() - mark
            write_json(folder.staged(SUMMARY), summary)
            log.info("report rendered in %.1f s", summary["timings"]["render"])
        log.info("run finished in %.1f s: %s", time.perf_counter() - clock, line)
        run_log.detach()
        folder.publish(list(RUN_FILES))
    return RunResult(target, summary, verdict, line)


def _check_target(target: Path, where: str, force: bool, pipeline_file: Path) -> None:
    """Said before any work: the run folder (and the folder it goes into) must be folders or not exist yet; a
    folder deeprep did not write is only written with ``--force``; the pipeline file being run is never
    overwritten (``--out .`` next to it)."""
    for path in (target, *target.parents):
        if path.exists():
            if not path.is_dir():
                raise UserError(f"{where}: {path} is a file, not a folder; choose another path")
            break
    if (target / "pipeline.yaml").exists() and (target / "pipeline.yaml").resolve() == pipeline_file.resolve():
        raise UserError(f"{where}: {target} holds the pipeline file being run, which the run would replace with "
                        f"its resolved copy; choose another folder")
    if not force and not is_run_folder(target):
        raise UserError(f"{where}: {target} is not empty and is not a deeprep run folder (no {MARKER}); choose a "
                        f"new or empty folder, or pass --force to write deeprep's files into it (it replaces "
                        f"files named {', '.join(RUN_FILES)})")


def _compare(store: Path, summary: dict[str, Any], baseline: Any, config: Config) -> dict[str, Any]:
    mark = time.perf_counter()
    with StoreReader(store) as reader:
        comparison = compare(reader, summary, baseline, config.pipeline.analysis)
    log.info("compared with baseline %s in %.1f s", baseline.folder, time.perf_counter() - mark)
    return comparison


def _extract_into(path: Path, plan: Any, started: str, resolved: str, run_id: str, bar: bool | None,
                  reuse_from: Path | None) -> None:
    from deeprep_report.extract.extract import extract

    config = plan.config
    with StoreWriter(path, config.pipeline.store) as store:
        store.set_attrs("/", {
            "tool_version": __version__, "run_id": run_id, "created": started, "config": resolved,
            "config_file": str(Path(config.source).resolve()), "seed": config.pipeline.run.seed,
            "packages": package_versions(), "platform": platform_info(),
        })
        extract(plan, store, bar=bar, reuse_from=reuse_from, run_id=run_id)
        store.set_attrs("/", {"finished": utc_now()})


@contextmanager
def _logging_into(run_log: RunLog, folder: RunFolder, target: Path) -> Iterator[None]:
    """Send the log to the staged run.log; a failure is recorded there (the CLI prints one line)."""
    run_log.attach(folder.staged("run.log"), target / "run.log")
    try:
        yield
    except (UserError, ClusterError) as exc:
        run_log.note(f"run failed: {exc}")
        raise
    except BaseException as exc:
        run_log.note("run failed with an internal error", exc)
        raise
    finally:
        run_log.detach()


def _summary(config: Config, target: Path, run_id: str, started: str, timings: dict[str, float], resolved: str,
             results: dict[str, Any]) -> dict[str, Any]:
    provenance = results.pop("provenance")
    return to_json_value({
        "schema": SCHEMA_ID,
        "schema_version": SCHEMA_VERSION,
        "nonfinite_numbers": NONFINITE_NOTE,
        "tool": {"name": "deeprep-report", "version": __version__},
        "run": {
            "name": config.pipeline.run.name, "id": run_id, "started": started, "finished": utc_now(),
            "seconds": None, "seed": config.pipeline.run.seed,  # set, with timings.total, after the audit
            "pipeline_file": str(Path(config.source).resolve()), "folder": str(target.resolve()),
        },
        "provenance": {
            "packages": provenance["packages"], "platform": provenance["platform"],
            "config_sha256": "sha256:" + hashlib.sha256(resolved.encode()).hexdigest(),
        },
        "timings": timings,
        **results,
    })  # plain JSON values from here on: checks and comparison read what summary.json will say
