"""Check rules, the verdict and summary.md on constructed summaries (no TensorFlow needed).

Checks read only summary.json, so every rule is driven here by summaries built
by hand with known numbers: each rule must pass on one side of its threshold
and fail on the other, name the layer, and report the value it compared.
"""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from deeprep_report.audit.checks import default_checks, evaluate, summarise
from deeprep_report.audit.markdown import markdown
from deeprep_report.audit.verdict import FAIL, NOT_EVALUATED, PASS, Verdict, verdict
from deeprep_report.config import Check, validate
from deeprep_report.errors import ConfigError


def check(**fields) -> Check:
    return TypeAdapter(Check).validate_python(fields)


def layer(path: str, *, units: int = 10, dead: int = 0, nonfinite: int = 0, saturation: float | None = None,
          activation: str = "relu", mean: float = 1.0) -> dict:
    return {"path": path, "units": units, "activation": activation,
            "stats": {"dead_units": dead, "dead_fraction": dead / units, "nonfinite_count": nonfinite,
                      "saturation_fraction": saturation, "mean": mean}}


def pair(layers: list[dict], analysis: dict | None = None, model: str = "m", dataset: str = "d") -> dict:
    return {"model": model, "dataset": dataset, "layers": layers, "analysis": analysis}


def summary(*pairs: dict, twins: tuple[str, ...] = ()) -> dict:
    models = sorted({p["model"] for p in pairs})
    return {"run": {"name": "nightly", "started": "2026-11-27T00:00:00Z"},
            "models": [{"name": m, "baseline_of": "m" if m in twins else None} for m in models],
            "pairs": list(pairs), "comparison": None}


def analysis(names: list[str], probe: list[float | None] | None = None,
             geometry: list[tuple[float, float]] | None = None) -> dict:
    return {"layers": names,
            "probe": [None if a is None else {"accuracy": a} for a in probe] if probe is not None else None,
            "geometry": [{"effective_rank": r, "participation_ratio": pr} for r, pr in geometry] if geometry else None}


def outcomes(results) -> list[tuple[str | None, float | None, str]]:
    return [(r.layer, r.value, r.status) for r in results]


def test_dead_units_pass_and_fail_per_layer():
    run = summary(pair([layer("a", dead=2), layer("b", dead=6)]))
    results = evaluate([check(rule="dead_units", max=0.5)], run, None)
    assert outcomes(results) == [("a", 0.2, PASS), ("b", 0.6, FAIL)]
    assert results[1].detail == "6 of 10 units dead" and results[1].threshold == 0.5
    assert outcomes(evaluate([check(rule="dead_units", max=0.6)], run, None)) == [("a", 0.2, PASS), ("b", 0.6, PASS)]


def test_nan_inf_fails_on_any_value():
    run = summary(pair([layer("a"), layer("b", nonfinite=1)]))
    assert outcomes(evaluate([check(rule="nan_inf")], run, None)) == [("a", 0.0, PASS), ("b", 1.0, FAIL)]


def test_saturation_skips_unbounded_and_softmax_unless_asked():
    run = summary(pair([layer("relu"), layer("tanh", saturation=0.3, activation="tanh"),
                        layer("probs", saturation=0.97, activation="softmax")]))
    assert outcomes(evaluate([check(rule="saturation", max=0.2)], run, None)) == [("tanh", 0.3, FAIL)]
    assert outcomes(evaluate([check(rule="saturation", max=0.5, include_softmax=True)], run, None)) == [
        ("tanh", 0.3, PASS), ("probs", 0.97, FAIL)]


def test_collapse_on_either_measure_leaves_the_input_out_unless_named():
    run = summary(pair([layer("a"), layer("b")], analysis(["input", "a", "b"], geometry=[(1.0, 1.0), (5.0, 1.5),
                                                                                         (1.2, 3.0)])))
    assert outcomes(evaluate([check(rule="collapse", min=2)], run, None)) == [("a", 5.0, PASS), ("b", 1.2, FAIL)]
    measured = evaluate([check(rule="collapse", min=2, measure="participation_ratio", layers=["input", "b"])], run, None)
    assert outcomes(measured) == [("input", 1.0, FAIL), ("b", 3.0, PASS)]


def test_probe_accuracy_at_given_layers_and_not_evaluated_without_labels():
    run = summary(pair([layer("a"), layer("b")], analysis(["input", "a", "b"], probe=[0.5, 0.7, 0.95])))
    assert outcomes(evaluate([check(rule="probe_accuracy", min=0.9, layers=["b"])], run, None)) == [("b", 0.95, PASS)]
    assert outcomes(evaluate([check(rule="probe_accuracy", min=0.8)], run, None)) == [("a", 0.7, FAIL),
                                                                                        ("b", 0.95, PASS)]
    unlabelled = summary(pair([layer("a")], analysis(["input", "a"])))
    (result,) = evaluate([check(rule="probe_accuracy", min=0.8)], unlabelled, None)
    assert (result.status, result.layer, result.detail) == (NOT_EVALUATED, None, "no probes (labels missing or probes off)")
    (off,) = evaluate([check(rule="probe_accuracy", min=0.8)], summary(pair([layer("a")])), None)
    assert off.detail == "the depth analysis is switched off"


def test_probe_monotonic_compares_consecutive_probed_layers():
    run = summary(pair([layer(n) for n in "abcd"], analysis(["input", "a", "b", "c", "d"],
                                                           probe=[0.9, 0.6, 0.8, None, 0.65])))
    results = evaluate([check(rule="probe_monotonic", tolerance=0.1)], run, None)
    assert [(r.layer, round(r.value, 6), r.status) for r in results] == [("b", -0.2, PASS), ("d", 0.15, FAIL)]
    assert results[1].detail == "probe accuracy 0.800 at b → 0.650"


def test_probe_monotonic_follows_the_graph_not_the_execution_order():
    """A head on a parallel branch is compared with the layer it reads, not with the branch run before it."""
    run = summary(pair([layer(n) for n in ("trunk", "deep", "head")],
                       analysis(["input", "trunk", "deep", "head"], probe=[0.5, 0.9, 0.95, 0.6])))
    run["models"][0]["layers"] = [{"path": "trunk", "inputs": ["input:x"]}, {"path": "deep", "inputs": ["trunk"]},
                                  {"path": "head", "inputs": ["trunk"]}]
    results = evaluate([check(rule="probe_monotonic", tolerance=0.4)], run, None)
    assert [(r.layer, r.detail) for r in results] == [("deep", "probe accuracy 0.900 at trunk → 0.950"),
                                                      ("head", "probe accuracy 0.900 at trunk → 0.600")]


def comparison(cka: dict[str, float | None], mean_change: dict[str, tuple[float, float]]) -> dict:
    layers = []
    for path, value in cka.items():
        before, after = mean_change[path]
        layers.append({"path": path, "cka": value, "stats": {"mean": {
            "baseline": before, "current": after, "change": after - before,
            "relative": abs(after - before) / abs(before)}}, "probe": None})
    return {"baseline": {"name": "release"}, "pairs": [{"model": "m", "dataset": "d", "layers": layers}]}


def test_drift_and_stat_drift_against_the_baseline():
    run = summary(pair([layer("a"), layer("b")]))
    compared = comparison({"a": 0.99, "b": 0.6}, {"a": (1.0, 1.05), "b": (2.0, 3.0)})
    assert outcomes(evaluate([check(rule="drift", min=0.8)], run, compared)) == [("a", 0.99, PASS), ("b", 0.6, FAIL)]
    results = evaluate([check(rule="stat_drift", statistic="mean", max=0.1)], run, compared)
    assert [(r.layer, round(r.value, 9), r.status) for r in results] == [("a", 0.05, PASS), ("b", 0.5, FAIL)]
    assert results[1].detail == "mean 2.0 → 3.0"
    (missing,) = evaluate([check(rule="drift", min=0.8)], run, None)
    assert missing.status == NOT_EVALUATED and "no baseline" in missing.detail


def test_random_twins_are_not_audited_and_datasets_select_pairs():
    run = summary(pair([layer("a", dead=9)]), pair([layer("a", dead=9)], model="m@random"),
                  pair([layer("a", dead=9)], dataset="other"), twins=("m@random",))
    assert [(r.model, r.dataset) for r in evaluate([check(rule="dead_units", max=0.5)], run, None)] == [
        ("m", "d"), ("m", "other")]
    chosen = evaluate([check(rule="dead_units", max=0.5, datasets=["other"])], run, None)
    assert [(r.model, r.dataset) for r in chosen] == [("m", "other")]


def test_verdict_counts_exit_codes_and_line():
    results = evaluate([check(rule="dead_units", max=0.5), check(rule="nan_inf", severity="warn"),
                        check(rule="probe_accuracy", min=0.5)],
                       summary(pair([layer("a", dead=6, nonfinite=2), layer("b")])), None)
    found = verdict(results)
    assert found == Verdict("FAIL", failed=1, warnings=1, not_evaluated=1, passed=2)
    assert [found.exit_code(level) for level in ("fail", "warn", "never")] == [1, 1, 0]
    assert found.line("out/report.html") == "FAIL 1 check failed, 1 warning, 1 not evaluated — out/report.html"
    warn_only = Verdict("WARN", failed=0, warnings=3, not_evaluated=0, passed=4)
    assert [warn_only.exit_code(level) for level in ("fail", "warn", "never")] == [0, 1, 0]
    unevaluated = verdict(evaluate([check(rule="probe_accuracy", min=0.5)], summary(pair([layer("a")])), None))
    assert unevaluated == Verdict("WARN", failed=0, warnings=0, not_evaluated=1, passed=0)  # never a PASS
    assert [unevaluated.exit_code(level) for level in ("fail", "warn")] == [0, 1]
    assert Verdict("FAIL", 2, 3, 0, 9).line("outputs/nightly/report.html") == (
        "FAIL 2 checks failed, 3 warnings — outputs/nightly/report.html")


def test_default_checks_follow_what_the_run_has():
    plain = summary(pair([layer("a")]))
    assert [c.rule for c in default_checks(plain, None)] == ["nan_inf", "dead_units", "saturation"]
    probed = summary(pair([layer("a")], analysis(["input", "a"], probe=[0.5, 0.9])),
                     pair([layer("a")], analysis(["input", "a"], probe=[0.5, 0.9]), dataset="transfer"))
    rules = default_checks(probed, {"pairs": []}, transfer_dataset="transfer")
    assert [c.rule for c in rules] == ["nan_inf", "dead_units", "saturation", "probe_monotonic", "drift"]
    assert rules[3].datasets == ["d"]  # accuracy may fall with depth on a transfer task: that is its profile
    assert [c.severity for c in rules] == ["fail", "warn", "warn", "warn", "warn"]


def test_markdown_lists_what_did_not_pass_and_escapes_cells():
    checks = [check(rule="dead_units", max=0.5)]
    run = summary(pair([layer("a|b", dead=6), layer("c")]))
    run["checks"] = summarise(checks, False, evaluate(checks, run, None))
    text = markdown(run, "out/report.html")
    assert text.splitlines()[0] == "## deeprep: ` nightly ` — FAIL"
    assert "**FAIL 1 check failed, 0 warnings** — ` out/report.html ` (1 checks passed)" in text
    assert "| FAIL | fail | `dead_units` | ` m ` × ` d ` | ` a\\|b ` | 0.6 | 0.5 | 6 of 10 units dead |" in text
    assert "` c `" not in text


HOSTILE_NAMES = ["<img src=x onerror=alert(1)>", "[click](javascript:alert(1))", "# Injected\nheading",
                 "![pixel](https://evil.example/p.png)", "``tick`` name"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_markdown_names_are_code_spans_and_details_are_escaped(name):
    checks = [check(rule="dead_units", max=0.5)]
    run = summary(pair([layer(name, dead=6)]))
    run["run"]["name"] = name
    run["checks"] = summarise(checks, False, evaluate(checks, run, None))
    run["checks"]["results"][0]["detail"] = f"see {name} at https://evil.example"
    text = markdown(run, "out/report.html")
    lines = text.splitlines()
    assert len(lines) == 7 and lines[0].startswith("## deeprep: `") and not any(
        line.startswith("#") for line in lines[1:])  # one heading, no injected one, no broken row
    fence = "```" if "``" in name else "`"
    shown = name.replace("\n", " ")
    assert lines[0] == f"## deeprep: {fence} {shown} {fence} — FAIL"
    assert f"| {fence} {shown} {fence} |" in lines[-1]
    detail = lines[-1].rsplit("|", 2)[-2]
    assert "<" not in detail and "](" not in detail and "https://" not in detail and "https\\:\\/\\/" in detail


@pytest.mark.parametrize("entry, message", [
    ({"rule": "dead_unit", "max": 0.5}, "checks[0].rule: unknown rule 'dead_unit' (did you mean 'dead_units'?)"),
    ({"rule": "nope"}, "checks[0].rule: unknown rule 'nope'; expected one of: dead_units, nan_inf, saturation, "
                       "collapse, probe_accuracy, probe_monotonic, drift, stat_drift, weights"),
    ({"max": 0.5}, "checks[0].rule: required key is missing; expected one of: dead_units, nan_inf, saturation, "
                   "collapse, probe_accuracy, probe_monotonic, drift, stat_drift, weights"),
    ({"rule": "dead_units", "max": 2}, "checks[0].max: expected less than or equal to 1, got 2"),
    ({"rule": "dead_units"}, "checks[0].max: required key is missing"),
    ({"rule": "drift", "min": 0.9, "tolerance": 1}, "checks[0].tolerance: unknown key; expected one of: layers, "
                                                    "datasets, severity, rule, min"),
    ({"rule": "nan_inf", "severity": "error"}, "checks[0].severity: expected 'warn' or 'fail', got 'error'"),
    ({"rule": "stat_drift", "statistic": "median", "max": 0.1}, "checks[0].statistic: expected 'mean', 'std', 'min', "
     "'max', 'zero_fraction', 'nonfinite_fraction', 'saturation_fraction' or 'dead_fraction', got 'median'"),
    ({"rule": "nan_inf", "datasets": ["dd"]}, "checks[0].datasets[0]: no dataset named 'dd' (did you mean 'd'?)"),
])
def test_bad_checks_are_config_errors_naming_the_field(entry, message):
    raw = {"models": [{"builtin": "digits_cnn"}], "datasets": [{"name": "d", "builtin": "digits"}], "checks": [entry]}
    with pytest.raises(ConfigError) as error:
        validate(raw, "pipeline.yaml")
    assert str(error.value) == f"pipeline.yaml: {message}"


def test_presets_fill_defaults_but_explicit_keys_win():
    base = {"models": [{"builtin": "digits_cnn"}], "datasets": [{"builtin": "digits"}]}
    assert validate({**base, "run": {"preset": "minimal"}}, "p").analysis.enabled is False
    assert validate({**base, "run": {"preset": "full"}}, "p").analysis.random_baseline is True
    assert validate({**base}, "p").analysis.random_baseline is False
    explicit = validate({**base, "run": {"preset": "full"}, "analysis": {"random_baseline": False}}, "p")
    assert explicit.analysis.random_baseline is False and explicit.analysis.enabled is True
