"""The ``deeprep`` command: thin over the library, responsible for exit codes.

Exit codes: 0 success; 1 the run's checks failed (``--fail-on`` says which
failures count); 2 bad input (config, model, data, usage, baseline, a run
folder in use or not deeprep's) or a fault of the machine (disk full,
read-only folder, permission denied), one line on stderr; 3 internal error (a bug), one line on stderr and the traceback in
``run.log``, or a Dask cluster that failed the run (a lost scheduler, workers that keep dying), one line. ``--debug`` shows tracebacks and TensorFlow's own output.
``run`` and ``check`` print one verdict line on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Sequence

from deeprep_report import __version__, logs
from deeprep_report.errors import ClusterError, UserError, fault_error

EXIT_OK, EXIT_FAILED_CHECKS, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    """A usage error is one line on stderr and exit 2, like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"error: {message}; see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="deeprep", description="Audit what a Keras model has learned, layer by layer.")
    parser.add_argument("--version", action="version", version=f"deeprep-report {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def pipeline_command(name: str, help_: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_, description=help_)
        sub.add_argument("pipeline", nargs="?", default="pipeline.yaml", help="pipeline file (default: ./pipeline.yaml)")
        sub.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                         help="override a config value, e.g. --set datasets[0].limit=100 (repeatable)")
        sub.add_argument("--quiet", action="store_true", help="only warnings and errors on stderr")
        sub.add_argument("--debug", action="store_true", help="tracebacks and TensorFlow output on stderr")
        return sub

    def baseline_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--baseline", type=Path, metavar="RUN_DIR",
                         help="compare with this finished run (overrides compare.baseline)")

    def audit_options(sub: argparse.ArgumentParser) -> None:
        baseline_option(sub)
        sub.add_argument("--fail-on", choices=("fail", "warn", "never"), default="fail",
                         help="exit 1 on failed fail-severity checks (default), also on warnings and "
                              "unevaluated checks (warn), or never")

    run = pipeline_command("run", "extract activations, compute statistics, check them, write the run folder")
    run.add_argument("--out", type=Path, help="write the run's files into this folder")
    run.add_argument("--dask", metavar="ADDRESS",
                     help="extract on Dask: 'local' (worker processes on this machine) or a scheduler's "
                          "tcp://HOST:PORT (sets run.executor; docs/cluster.md)")
    run.add_argument("--force", action="store_true",
                     help="write into a folder deeprep did not make (replacing files with its file names), and "
                          "re-extract every pair even when a run in the output folder could be reused")
    audit_options(run)
    baseline_option(pipeline_command("validate", "check the config, files, models, layers and baseline without "
                                                 "extracting"))
    render = commands.add_parser("render", help="rebuild report.html from a run folder (no TensorFlow)",
                                 description="rebuild report.html from a run folder's summary.json and activations.h5")
    render.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a finished run folder")
    render.add_argument("--set", dest="overrides", action="append", default=[], metavar="report.KEY=VALUE",
                        help="override a report setting of the stored config, e.g. --set report.gallery.samples=8")
    render.add_argument("--out", type=Path, metavar="FILE",
                        help="write the report to FILE (outside the run folder) and leave the run folder alone")
    render.add_argument("--quiet", action="store_true", help="only warnings and errors on stderr")
    render.add_argument("--debug", action="store_true", help="tracebacks on stderr")
    check = commands.add_parser("check", help="re-evaluate the checks of a finished run (no TensorFlow)",
                                description="re-evaluate the checks of a finished run from its summary.json and "
                                            "activations.h5; update summary.json, summary.md and report.html")
    check.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a finished run folder")
    check.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                       help="override a setting of the stored config, e.g. --set 'checks=[{rule: nan_inf}]'")
    audit_options(check)
    writes = check.add_mutually_exclusive_group()
    writes.add_argument("--dry-run", action="store_true",
                        help="print the verdict and every result; write nothing")
    writes.add_argument("--write", action="store_true",
                        help="with --set: update the run's files (without it, --set only prints the results)")
    check.add_argument("--no-render", action="store_true",
                       help="update summary.json and summary.md only; the old report.html is removed (it showed "
                            "the previous checks), deeprep render RUN_DIR writes it again")
    check.add_argument("--quiet", action="store_true", help="only warnings and errors on stderr")
    check.add_argument("--debug", action="store_true", help="tracebacks on stderr")
    index = commands.add_parser("index", help="write OUTPUT_DIR/index.html listing its run folders, newest first",
                                description="write a static index.html of every finished run folder in OUTPUT_DIR")
    index.add_argument("output_dir", type=Path, metavar="OUTPUT_DIR", help="a folder of run folders")
    index.add_argument("--quiet", action="store_true", help="only warnings and errors on stderr")
    index.add_argument("--debug", action="store_true", help="tracebacks on stderr")
    commands.add_parser("schema", help="print the JSON Schema of pipeline.yaml")
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (a CI job cancelled, ``docker stop``): handled like Ctrl-C, so the run folder is cleaned up."""


#: Set by the SIGTERM handler: the exception it raises can surface as another one when it lands inside C code
#: (TensorFlow tracing a function turns it into ``SystemError``), and a terminated run is still exit 143.
_terminated = False


def _terminate(signum: int, frame: Any) -> None:
    global _terminated
    _terminated = True
    raise Terminated()


#: Set when HDF5 failed to write (disk full): its library state is then broken, and its finalizers crash the
#: interpreter at exit (a segmentation fault after pages of tracebacks), so :func:`entry` skips them.
_hdf5_failed = False


def entry() -> None:
    """The ``deeprep`` console script: :func:`main`, then exit with its code."""
    code = main()
    sys.unraisablehook = _log_unraisable  # h5py objects freed after main() still raise in their finalizers
    if _hdf5_failed:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # the run folder is already cleaned up; only HDF5's broken finalizers are skipped
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    if threading.current_thread() is not threading.main_thread():  # signal handlers: main thread only
        return _main(argv)
    global _terminated
    _terminated = False
    previous = signal.signal(signal.SIGTERM, _terminate)
    hook = sys.unraisablehook
    sys.unraisablehook = _log_unraisable
    try:
        return _main(argv)
    finally:
        signal.signal(signal.SIGTERM, previous)
        sys.unraisablehook = hook


def _log_unraisable(unraisable: Any) -> None:
    """Errors in finalizers (h5py's, after a failed write: one per open object) go to run.log, not stderr."""
    logging.getLogger("deeprep").debug("ignored in %r: %s", unraisable.object, unraisable.exc_value)


def _main(argv: Sequence[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a usage error (one line already printed)
        return int(exit_.code or 0)
    if args.command == "schema":
        from deeprep_report.config import json_schema

        print(json.dumps(json_schema(), indent=2))
        return EXIT_OK
    run_log = logs.setup(quiet=args.quiet, debug=args.debug)
    try:
        commands = {"run": lambda: _run(args, run_log), "validate": lambda: _validate(args),
                    "render": lambda: _render(args), "check": lambda: _check(args), "index": lambda: _index(args)}
        return commands[args.command]()
    except (UserError, ClusterError) as exc:  # bad input (exit 2), or the cluster failed the run (exit 3)
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT if isinstance(exc, UserError) else EXIT_INTERNAL
    except KeyboardInterrupt as exc:
        if isinstance(exc, Terminated):
            print("terminated (SIGTERM)", file=sys.stderr)
            return 143
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place a bug becomes exit 3
        if _terminated:  # the SIGTERM, turned into another exception by the C code it interrupted
            logging.getLogger("deeprep").debug("SIGTERM surfaced as %s: %s", type(exc).__name__, exc)
            print("terminated (SIGTERM)", file=sys.stderr)
            return 143
        if args.debug:
            raise
        from deeprep_report.store import damaged_store_error
        from deeprep_report.store.runfolder import STAGING_PREFIX

        fault = fault_error(exc, STAGING_PREFIX) or damaged_store_error(exc)
        if fault is not None:
            global _hdf5_failed
            _hdf5_failed = _hdf5_failed or _hdf5_write_failed(exc)
            run_log.note(f"run failed: {fault}", exc)
            print(f"error: {fault}", file=sys.stderr)
            return EXIT_BAD_INPUT
        where = _traceback_file(run_log, exc)
        print(f"internal error: {type(exc).__name__}: {exc} (traceback in {where})".replace("\n", " "), file=sys.stderr)
        return EXIT_INTERNAL


def _hdf5_write_failed(error: BaseException | None) -> bool:
    """Whether HDF5's own write failed (its message carries the errno) anywhere in the chain of ``error``."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if "errno = " in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def _run(args: argparse.Namespace, run_log: logs.RunLog) -> int:
    from deeprep_report.config import load_config
    from deeprep_report.extract.kernels import warm_up_in_background
    from deeprep_report.tf_runtime import import_tensorflow

    config = load_config(args.pipeline, _overrides(args))
    warm_up_in_background()  # overlaps numba's cache loading with TensorFlow's import
    import_tensorflow(quiet=not args.debug)
    from deeprep_report.runner import run_pipeline

    result = run_pipeline(config, run_log, out=args.out, bar=False if args.quiet else None, force=args.force)
    print(result.verdict_line)
    return result.verdict.exit_code(args.fail_on)


def _overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` items, plus ``--baseline`` as the ``compare.baseline`` override it is."""
    overrides = list(args.overrides)
    if args.baseline is not None:  # a JSON string is YAML: any path survives the override parser
        overrides.append(f"compare.baseline={json.dumps(str(args.baseline.resolve()))}")
    if getattr(args, "dask", None) is not None:
        overrides += ["run.executor.kind=dask", f"run.executor.address={json.dumps(args.dask)}"]
    return overrides


def _check(args: argparse.Namespace) -> int:
    from deeprep_report.audit.verdict import results_table
    from deeprep_report.stored_run import recheck

    logs.release_console()
    write = not args.dry_run and (args.write or not args.overrides)
    if args.no_render and not write:
        raise UserError("--no-render: nothing is written with --dry-run or with --set but no --write")
    checked = recheck(args.run_dir, args.baseline, args.overrides, write=write, render_report=not args.no_render)
    if args.overrides and not write and not args.dry_run:  # said once the settings proved valid
        logging.getLogger("deeprep").warning("--set without --write: nothing written (the run's files keep its own "
                                             "settings); add --write to update them")
    if not write:
        for row in results_table(checked.results):
            print(row)
    print(checked.line)
    return checked.verdict.exit_code(args.fail_on)


def _index(args: argparse.Namespace) -> int:
    from deeprep_report.report.index import write_index

    logs.release_console()
    print(f"done: {write_index(args.output_dir)}")
    return EXIT_OK


def _validate(args: argparse.Namespace) -> int:
    from deeprep_report.config import load_config
    from deeprep_report.tf_runtime import import_tensorflow

    config = load_config(args.pipeline, _overrides(args))
    import_tensorflow(quiet=not args.debug)
    from deeprep_report.extract.plan import make_plan

    plan = make_plan(config)
    logs.release_console()
    pairs = ", ".join(f"{p.model.name} × {p.data.name} ({len(p.model.selected)} layers, {len(p.data.rows)} samples)"
                      for p in plan.pairs)
    print(f"{config.source}: OK: {pairs}")
    return EXIT_OK


def _render(args: argparse.Namespace) -> int:
    from deeprep_report.stored_run import rerender

    logs.release_console()
    print(f"done: {rerender(args.run_dir, args.overrides, args.out)}")
    return EXIT_OK


def _traceback_file(run_log: logs.RunLog, exc: BaseException) -> Path:
    """run.log when the run folder exists; otherwise a temporary file with the log so far."""
    if run_log.path is not None:
        return run_log.path
    run_log.note("internal error", exc)
    handle = tempfile.NamedTemporaryFile("w", prefix="deeprep-", suffix=".log", delete=False)
    handle.close()
    run_log.dump(Path(handle.name))
    return Path(handle.name)
