"""``deeprep check`` and ``render`` flags for working on a finished run (issue 14): what each writes, and what
it prints. Every test works on a copy of the session's small run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from deeprep_report.cli import main
from deeprep_report.store.lock import LOCK

STRICT = "checks=[{rule: saturation, max: 0.001, severity: fail}, {rule: nan_inf}]"


@pytest.fixture
def run_dir(small_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(small_run, tmp_path / "run"))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file() and path.name != LOCK}


def results_of(folder: Path) -> list[dict]:
    return json.loads((folder / "summary.json").read_text(encoding="utf-8"))["checks"]["results"]


def test_a_dry_run_prints_every_result_and_the_verdict_and_writes_nothing(run_dir, capsys):
    before = snapshot(run_dir)
    capsys.readouterr()
    assert main(["check", str(run_dir), "--dry-run", "--quiet", "--set", STRICT]) == 1
    out = capsys.readouterr().out.splitlines()
    assert snapshot(run_dir) == before
    assert out[0].split() == ["status", "severity", "rule", "model", "×", "dataset", "layer", "value", "threshold",
                              "detail"]
    assert out[1].split()[:5] == ["FAIL", "fail", "saturation", "m", "×"] and "hidden" in out[1]
    assert len(out) == 1 + 1 + 5 + 1  # header, the failed saturation check, five nan_inf passes, verdict
    assert all(row.startswith("pass") for row in out[2:-1])
    assert out[-1] == f"FAIL 1 check failed, 0 warnings — {run_dir / 'report.html'}"


def test_set_writes_nothing_without_write_and_says_so(run_dir, capsys):
    before = snapshot(run_dir)
    capsys.readouterr()
    assert main(["check", str(run_dir), "--quiet", "--set", STRICT]) == 1
    captured = capsys.readouterr()
    assert snapshot(run_dir) == before
    assert captured.err.count("\n") == 1 and captured.err.endswith(
        " WARNING --set without --write: nothing written (the run's files keep its own settings); add --write to "
        "update them\n")
    assert captured.out.splitlines()[-1].startswith("FAIL 1 check failed")
    assert main(["check", str(run_dir), "--quiet", "--set", STRICT, "--write"]) == 1
    assert capsys.readouterr().out == f"FAIL 1 check failed, 0 warnings — {run_dir / 'report.html'}\n"
    assert [r["rule"] for r in results_of(run_dir) if r["status"] == "fail"] == ["saturation"]
    assert "FAIL" in (run_dir / "summary.md").read_text(encoding="utf-8")
    assert '<p class="banner fail" role="status"><span class="word">FAIL</span>' in (
        run_dir / "report.html").read_text(encoding="utf-8")


def test_no_render_updates_the_summaries_and_removes_the_stale_report(run_dir, capsys):
    capsys.readouterr()
    assert main(["check", str(run_dir), "--quiet", "--set", STRICT, "--write", "--no-render"]) == 1
    captured = capsys.readouterr()
    assert captured.out == f"FAIL 1 check failed, 0 warnings — {run_dir / 'summary.json'}\n"
    assert " WARNING report.html removed: it showed the previous checks (not re-rendered: --no-render); deeprep " \
        f"render {run_dir} writes it again\n" in captured.err
    assert not (run_dir / "report.html").exists() and results_of(run_dir)[0]["status"] == "fail"
    assert main(["render", str(run_dir), "--quiet"]) == 0
    assert "saturation" in (run_dir / "report.html").read_text(encoding="utf-8")


def test_check_honours_report_enabled_false(run_dir, capsys):
    capsys.readouterr()
    assert main(["check", str(run_dir), "--quiet", "--set", "report.enabled=false", "--write"]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"PASS 0 checks failed, 0 warnings — {run_dir / 'summary.json'}\n"
    assert "not re-rendered: report.enabled is false" in captured.err and not (run_dir / "report.html").exists()


def test_no_render_with_nothing_to_write_is_refused(run_dir, capsys):
    capsys.readouterr()
    assert main(["check", str(run_dir), "--dry-run", "--no-render"]) == 2
    assert capsys.readouterr().err == ("error: --no-render: nothing is written with --dry-run or with --set but no "
                                       "--write\n")
    assert main(["check", str(run_dir), "--dry-run", "--write"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_render_out_writes_a_variant_and_leaves_the_run_alone(run_dir, tmp_path, capsys):
    before = snapshot(run_dir)
    variant = tmp_path / "variant.html"
    capsys.readouterr()
    assert main(["render", str(run_dir), "--quiet", "--out", str(variant), "--set", "report.gallery.samples=2"]) == 0
    assert capsys.readouterr().out == f"done: {variant}\n"
    assert snapshot(run_dir) == before
    html = variant.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and html != before["report.html"].decode()
    for target, message in [
        (tmp_path, f"--out {tmp_path}: a folder; name the report file, e.g. {tmp_path / 'report.html'}"),
        (tmp_path / "nowhere" / "r.html", f"--out {tmp_path / 'nowhere' / 'r.html'}: no folder {tmp_path / 'nowhere'}"),
        (run_dir / "other.html", f"--out {run_dir / 'other.html'}: inside the run folder, whose files belong to the "
                                 f"run; write the variant report elsewhere (or leave out --out to rebuild "
                                 f"{run_dir / 'report.html'})"),
    ]:
        assert main(["render", str(run_dir), "--quiet", "--out", str(target)]) == 2
        assert capsys.readouterr().err == f"error: {message}\n"
    assert snapshot(run_dir) == before
    assert main(["render", str(run_dir), "--quiet", "--out", str(run_dir / "report.html")]) == 0  # in place
