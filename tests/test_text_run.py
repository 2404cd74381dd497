"""The text demo end to end (examples/text.yaml, cut to a few hundred samples): the trained demo model, the
pretrained MiniLM and both random twins, through the real command; a strict summary with token-level results,
and a report with the token section and top contexts as escaped text."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from conftest import ROOT, verdict_line
from deeprep_report.store.summary import schema


@pytest.fixture(scope="module")
def text_run(tmp_path_factory: pytest.TempPathFactory, demo_cache: Path) -> Path:
    out = tmp_path_factory.mktemp("text") / "run"
    result = subprocess.run(
        [sys.executable, "-m", "deeprep_report", "run", str(ROOT / "examples/text.yaml"), "--out", str(out),
         "--set", "datasets[0].limit=240", "--set", "analysis.tokens.samples=800"],
        capture_output=True, text=True, env=os.environ.copy(), timeout=900)
    assert result.returncode == 0, result.stderr
    assert result.stdout == verdict_line(out) + "\n"
    return out


def test_text_demo_summary_has_masked_layers_and_token_analysis(text_run):
    summary = json.loads((text_run / "summary.json").read_text(encoding="utf-8"))
    jsonschema.validate(summary, schema())
    pairs = {pair["model"]: pair for pair in summary["pairs"]}
    assert sorted(pairs) == ["minilm", "minilm@random", "text_demo", "text_demo@random"]
    for name, pair in pairs.items():
        assert pair["tokens"]["mask_source"] == "data: the preset tokenizer's padding"
        masked = {layer["path"]: layer["masked"] for layer in pair["layers"]}
        analysis = pair["analysis"]
        assert analysis["views"][0]["method"] == "bag_of_tokens"
        tokens = analysis["tokens"]
        assert tokens["layers"] == [path for path, flag in masked.items() if flag], name
        assert set(tokens["tasks"]) == {"identity", "previous_token", "position", "word_start"}
        assert all(len(entry["accuracy"]) == len(tokens["layers"]) for entry in tokens["tasks"].values())
    assert pairs["text_demo"]["layers"][3]["path"] == "pool" and pairs["text_demo"]["layers"][3]["masked"] is False
    assert len(pairs["minilm"]["analysis"]["tokens"]["cka_with_random"]) == 9


def test_text_demo_report_shows_tokens_and_contexts_escaped(text_run):
    html = (text_run / "report.html").read_text(encoding="utf-8")
    assert html.count('<h3>Tokens</h3>') == 2  # the two trained models (twins are their comparison curves)
    assert html.count("<h4>Top contexts</h4>") >= 9
    assert html.count("<h4>Nearest tokens</h4>") == 2  # the input embeddings (not MiniLM's position embedding)
    assert "<td>real tokens only (mask from data: the preset tokenizer&#39;s padding)</td>" in html
    assert "<td>every position: one vector per sequence (the model pooled or summarised the tokens itself)</td>" in html
    assert re.search(r'<span class="tok( centre)?" style="--a: [01]\.\d\d"', html)
    assert "<script" not in html.lower()
    # the docstrings' angle brackets (links, "<= x") arrive as text, never as markup
    from deeprep_report.store import StoreReader

    with StoreReader(text_run / "activations.h5") as store:
        texts = store.texts("docstrings", range(6))  # the report's sample table shows these six
    from markupsafe import escape

    for text in texts:  # escaped exactly as Jinja's autoescape writes them
        assert str(escape(text))[:60] in html
    assert "<https://" not in html
