"""Safe under hostile input (issue 13): a run folder never makes the tool run code — its stored
``report.template_dir`` is not used, and every template runs in Jinja's immutable sandbox."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import yaml

from conftest import write_pipeline
from deeprep_report.cli import main


def hostile_templates(folder: Path, marker: Path) -> Path:
    """A template folder whose report page would run a shell command outside a sandbox."""
    folder.mkdir()
    (folder / "report.html.j2").write_text(
        "{{ cycler.__init__.__globals__.os.system('touch " + str(marker) + "') }}", encoding="utf-8")
    return folder


def with_stored_template_dir(run_dir: Path, template_dir: Path) -> None:
    """What a hostile run folder can hold: a stored config naming a template folder it ships."""
    with h5py.File(run_dir / "activations.h5", "r+") as store:
        config = yaml.safe_load(store.attrs["config"])
        config["report"]["template_dir"] = str(template_dir)
        store.attrs["config"] = yaml.safe_dump(config)


def test_a_run_folder_cannot_choose_the_templates_it_is_rendered_with(small_run, tmp_path, capsys):
    run_dir = tmp_path / "theirs"
    shutil.copytree(small_run, run_dir)
    marker = tmp_path / "pwned"
    with_stored_template_dir(run_dir, hostile_templates(run_dir / "templates", marker))
    capsys.readouterr()
    assert main(["render", str(run_dir)]) == 0
    err = capsys.readouterr().err
    assert not marker.exists()
    assert f"the run folder's report.template_dir {run_dir / 'templates'} is not used (a run folder is untrusted " \
           "input)" in err
    assert '<section id="models">' in (run_dir / "report.html").read_text(encoding="utf-8")  # shipped templates
    assert main(["check", str(run_dir), "--quiet"]) in (0, 1) and not marker.exists()


def test_a_template_the_user_names_runs_sandboxed(small_run, tmp_path, capsys):
    run_dir = tmp_path / "mine"
    shutil.copytree(small_run, run_dir)
    marker = tmp_path / "pwned"
    templates = hostile_templates(tmp_path / "templates", marker)
    capsys.readouterr()
    code = main(["render", str(run_dir), "--quiet", "--set", f"report.template_dir={templates}"])
    err = capsys.readouterr().err
    assert (code, err.count("\n")) == (2, 1) and not marker.exists()
    assert err.startswith(f"error: report.template_dir {templates}: a template did something the sandbox refuses: "
                          "access to attribute '__init__' of 'type' object is unsafe"), err


def test_index_links_cannot_run_script_and_malformed_runs_are_skipped(small_run, tmp_path, capsys):
    out = tmp_path / "outputs"
    out.mkdir()
    shutil.copytree(small_run, out / "javascript:alert(1)")
    shutil.copytree(small_run, out / "broken")
    (out / "broken" / "summary.json").write_text("[1, 2]", encoding="utf-8")
    capsys.readouterr()
    assert main(["index", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"index: skipping {out / 'broken' / 'summary.json'}: expected a JSON object, got a JSON list" in err
    html = (out / "index.html").read_text(encoding="utf-8")
    assert 'href="./javascript%3Aalert%281%29/report.html"' in html and 'href="javascript' not in html
    assert "broken" not in html.split("<tbody>")[1]


def test_sigterm_is_a_clean_exit_like_ctrl_c(tmp_path):
    """What CI cancel and ``docker stop`` send: one line, exit 143, the staging folder removed, nothing
    published."""
    import os
    import signal
    import subprocess
    import sys
    import time

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=rng.random((4000, 28, 28, 1), dtype=np.float32), y=np.arange(4000) % 10)
    pipeline = write_pipeline(tmp_path, {"run": {"name": "t"}, "models": [{"builtin": "digits_cnn"}],
                                         "datasets": [{"name": "d", "path": "data.npz", "batch_size": 8}]})
    process = subprocess.Popen([sys.executable, "-m", "deeprep_report", "run", str(pipeline), "--quiet"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    run_dir = tmp_path / "outputs/t"
    deadline = time.monotonic() + 240
    while not list(run_dir.glob(".deeprep-partial-*")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert list(run_dir.glob(".deeprep-partial-*")), "the run never started staging"
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert (process.returncode, out, err) == (143, "", "terminated (SIGTERM)\n")
    assert not list(run_dir.glob(".deeprep-partial-*")) and not (run_dir / "summary.json").exists()


def test_sigterm_that_surfaces_as_another_error_is_still_a_termination(monkeypatch, capsys):
    """A SIGTERM landing while TensorFlow traces a function comes out of its C code as ``SystemError`` (seen in
    CI: ``Objects/listobject.c:338: bad argument to internal function``): still exit 143 and the usual line."""
    import signal

    from deeprep_report import cli

    def run_hit_by_sigterm(args, run_log):
        try:
            cli._terminate(signal.SIGTERM, None)
        except cli.Terminated:
            raise SystemError("Objects/listobject.c:338: bad argument to internal function") from None

    monkeypatch.setattr(cli, "_run", run_hit_by_sigterm)
    capsys.readouterr()
    assert main(["run", "pipeline.yaml", "--quiet"]) == 143
    assert capsys.readouterr().err == "terminated (SIGTERM)\n"
    monkeypatch.setattr(cli, "_run", lambda args, run_log: 1 / 0)  # without a SIGTERM, a bug stays a bug
    assert main(["run", "pipeline.yaml", "--quiet"]) == 3


SAVEDMODEL_THAT_WRITES = '''
import sys
import tensorflow as tf

class Module(tf.Module):
    def __init__(self):
        self.w = tf.Variable(tf.ones([12, 3]))

    @tf.function(input_signature=[tf.TensorSpec([None, 12], tf.float32)])
    def serve(self, x):
        tf.io.write_file(sys.argv[2], "ran")  # a graph op that writes a file, each time the model is called
        return {"out": tf.matmul(x, self.w)}

module = Module()
tf.saved_model.save(module, sys.argv[1], signatures={"serving_default": module.serve})
'''


def test_a_savedmodel_runs_only_with_the_explicit_opt_in(tmp_path, capsys):
    """A SavedModel is a program (its graph can write files; Keras safe_mode does not reach it): refused with
    one line naming the key, and its ops never run; with ``allow_saved_model_code: true`` it loads and runs."""
    import subprocess
    import sys

    marker = tmp_path / "written-by-the-graph"
    done = subprocess.run([sys.executable, "-c", SAVEDMODEL_THAT_WRITES, str(tmp_path / "sm"), str(marker)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    np.savez(tmp_path / "data.npz", x=np.random.default_rng(0).random((8, 12), dtype=np.float32))
    spec = {"run": {"name": "t", "preset": "minimal"}, "models": [{"name": "m", "path": "sm"}],
            "datasets": [{"name": "d", "path": "data.npz"}]}
    pipeline = write_pipeline(tmp_path, spec)
    for command in ("validate", "run"):
        capsys.readouterr()
        assert main([command, str(pipeline), "--quiet"]) == 2
        assert capsys.readouterr().err.strip() == (
            f"error: {pipeline}: models[0].path: 'sm' is a SavedModel: its graph runs the TensorFlow ops stored in "
            f"the folder (they can read and write files; Keras safe_mode does not apply); set "
            f"models[0].allow_saved_model_code: true to load it if you trust it, or load a .keras file")
        assert not marker.exists()
    spec["models"][0]["allow_saved_model_code"] = True
    assert main(["run", str(write_pipeline(tmp_path, spec)), "--quiet"]) == 0
    assert marker.read_text() == "ran"
