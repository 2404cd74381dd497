"""Findings (issue 14): each cause once, with a severity; by-design saturation left out."""

from __future__ import annotations

from deeprep_report.audit.findings import find


def layer(path: str, units: int, dead: list[int], activation: str | None = "relu", saturation: float | None = None):
    stats = {"dead_units": len(dead), "dead_fraction": len(dead) / units, "nonfinite_count": 0,
             "nonfinite_fraction": 0.0, "saturation_fraction": saturation, "values": 100 * units}
    return {"path": path, "units": units, "stats": stats, "dead_unit_indices": dead, "activation": activation}


def architecture(path: str, inputs: list[str], inherited: bool, params: int):
    return {"path": path, "inputs": inputs, "activation_inherited": inherited, "params": params}


def summary(layers: list[dict], model_layers: list[dict]) -> dict:
    return {"datasets": [{"name": "d", "nonfinite_inputs": 0}],
            "models": [{"name": "m", "skipped_layers": [{"path": "lstm", "reason": "returns three tensors"}],
                        "baseline_of": None, "layers": model_layers}],
            "pairs": [{"model": "m", "dataset": "d", "layers": layers, "analysis": None}]}


def test_a_pass_through_layer_is_folded_into_the_layer_that_causes_its_finding():
    layers = [layer("conv", 4, [1, 3]), layer("pool", 4, [1, 3]), layer("flat", 16, [4, 5, 12, 13, 14]),
              layer("drop", 16, [4, 5, 12, 13, 14]), layer("dense", 8, [0]), layer("head", 3, [], "softmax", 0.97),
              layer("gate", 8, [], "sigmoid", 0.95)]
    model = [architecture("conv", ["input:x"], False, 40), architecture("pool", ["conv"], True, 0),
             architecture("flat", ["pool"], True, 0), architecture("drop", ["flat"], True, 0),
             architecture("dense", ["drop"], False, 136), architecture("head", ["dense"], False, 27),
             architecture("gate", ["dense"], False, 72)]
    anchors = {("m", "d", name): f"layer-{name}" for name in ("conv", "pool", "flat", "drop", "dense", "head", "gate")}
    found = find(summary(layers, model), 0.9, anchors)
    assert [(f.severity, f.kind, f.where, f.anchor) for f in found] == [
        ("medium", "dead units", "m × d / conv", "layer-conv"),
        ("medium", "dead units", "m × d / dense", "layer-dense"),
        ("low", "not captured", "m / lstm", "models"),
        ("low", "saturated", "m × d / gate", "layer-gate")]  # the softmax head's saturation is by design
    assert found[0].text == ("2 of 4 units dead (50.0 %): #1, 3; carried into pool (2 of 4 units dead), flat (5 of "
                             "16 units dead), drop (5 of 16 units dead)")


def test_without_its_producer_in_the_run_a_pass_through_layer_keeps_its_own_finding():
    layers = [layer("pool", 4, [2]), layer("flat", 16, [8, 9, 10, 11])]
    model = [architecture("conv", ["input:x"], False, 40), architecture("pool", ["conv"], True, 0),
             architecture("flat", ["pool"], True, 0)]
    found = [f for f in find(summary(layers, model), 0.9, {}) if f.kind == "dead units"]
    assert [(f.where, f.text) for f in found] == [
        ("m × d / pool", "1 of 4 units dead (25.0 %): #2; carried into flat (4 of 16 units dead)")]
    # a layer with weights is never folded, even with one input and the same dead units
    model[2] = architecture("flat", ["pool"], False, 10)
    assert [f.where for f in find(summary(layers, model), 0.9, {}) if f.kind == "dead units"] == [
        "m × d / pool", "m × d / flat"]
