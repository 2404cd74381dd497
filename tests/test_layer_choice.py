"""report.layers: auto — which layers of a big model get a section, from its architecture table alone."""

from __future__ import annotations

from deeprep_report.config import ReportSection
from deeprep_report.report.layer_choice import block_outputs, choose, stage_ends


def row(path: str, inputs: list[str], shape: list, params: int = 0, class_name: str = "Conv2D") -> dict:
    return {"path": path, "inputs": inputs, "output_shape": shape, "params": params, "class_name": class_name}


def residual(blocks: int) -> list[dict]:
    """stem -> blocks of (a -> b) with a skip connection into add -> out."""
    rows = [row("stem", ["input:x"], [None, 8, 8, 4], 10)]
    previous = "stem"
    for k in range(blocks):
        size = 8 if k < blocks // 2 else 4
        rows += [row(f"b{k}_a", [previous], [None, size, size, 4], 5), row(f"b{k}_b", [f"b{k}_a"], [None, size, size, 4], 5),
                 row(f"b{k}_add", [f"b{k}_b", previous], [None, size, size, 4], class_name="Add"),
                 row(f"b{k}_out", [f"b{k}_add"], [None, size, size, 4], class_name="Activation")]
        previous = f"b{k}_out"
    return rows + [row("head", [previous], [None, 10], 40, "Dense")]


def pair_of(rows: list[dict]) -> dict:
    return {"layers": [{"path": r["path"], "output_shape": r["output_shape"], "class_name": r["class_name"]}
                       for r in rows]}


def test_block_outputs_are_the_layers_no_connection_skips_that_feed_two():
    rows = residual(4)
    names = [r["path"] for r in rows]
    # each block's out feeds the next block's a and its add (the skip); the last one only the head
    assert block_outputs(rows, names) == ["stem", "b0_out", "b1_out", "b2_out"]
    assert block_outputs(rows, [n for n in names if n != "b1_out"]) == ["stem", "b0_out", "b2_out"]  # captured only
    chain = [row(f"c{i}", [f"c{i - 1}" if i else "input:x"], [None, 8 >> (i // 3), 8 >> (i // 3), 4], 1)
             for i in range(9)]
    assert block_outputs(chain, [r["path"] for r in chain]) == []  # a plain chain has no blocks...
    shapes = {r["path"]: r["output_shape"] for r in chain}
    assert stage_ends([r["path"] for r in chain], shapes) == ["c2", "c5"]  # ...only stages


def test_a_small_model_shows_every_layer_and_a_big_one_a_chosen_set():
    rows = residual(12)
    names = [r["path"] for r in rows]
    small = choose(ReportSection(max_layers=len(names)), pair_of(rows), rows, set())
    assert small.full == names and not small.brief and not small.hidden and not small.automatic
    big = choose(ReportSection(max_layers=8), pair_of(rows), rows, {"b3_a", "b5_out"})
    assert big.automatic
    assert big.full[0] == "stem" and big.full[-1] == "head" and "b5_out" in big.full  # b5_out: the stage end
    assert len(big.full) <= 8 and big.brief == ["b3_a"]  # a flagged layer outside the set: in brief
    assert set(big.full) | set(big.brief) | set(big.hidden) == set(names)
    assert not set(big.full) & set(big.hidden) and not set(big.brief) & set(big.hidden)
    listed = choose(ReportSection(layers=["b1_*"], max_layers=8), pair_of(rows), rows, {"b3_a"})
    assert listed.full == ["b1_a", "b1_b", "b1_add", "b1_out"] and not listed.brief  # the user's list, exactly
    everything = choose(ReportSection(layers="all", max_layers=8), pair_of(rows), rows, {"b3_a"})
    assert everything.full == names


def test_resnet50_shows_its_stem_its_16_block_outputs_and_its_head(tf_quiet):
    import keras

    from deeprep_report.extract.graph import LayerGraph

    network = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3))
    rows = [info.describe() for info in LayerGraph(network, "resnet50").layers]
    pair = pair_of(rows)
    choice = choose(ReportSection(), pair, rows, set())
    outs = [layer.name for layer in network.layers if layer.name.endswith("_out")]
    assert len(outs) == 16
    assert choice.full == ["conv1_conv", "conv1_relu", "pool1_pool", *outs, "predictions"]
    assert len(choice.hidden) == len(rows) - len(choice.full)


def test_max_layers_holds_when_almost_every_layer_ends_a_stage():
    """Branches of two resolutions interleaved in execution order: each layer 'ends a stage'."""
    rows = [row(f"c{i}", [f"c{i - 1}" if i else "input:x"], [None, 4 << (i % 2), 4 << (i % 2), 4], 1)
            for i in range(60)]
    choice = choose(ReportSection(max_layers=8), pair_of(rows), rows, set())
    assert 6 <= len(choice.full) <= 8 and choice.full[0] == "c0" and choice.full[-1] == "c59"


def test_a_stack_of_transformer_layers_gets_evenly_spaced_layers():
    """Each block feeds only the next (its padding-mask input is not a layer): no block outputs, no maps."""
    rows = [row("token_embedding", ["input:ids"], [None, 16, 8], 80, "Embedding")]
    rows += [row(f"transformer_layer_{i}", ["token_embedding" if i == 0 else f"transformer_layer_{i - 1}",
                                            "input:mask"], [None, 16, 8], 300, "TransformerEncoder")
             for i in range(36)]
    rows += [row("layer_norm", ["transformer_layer_35"], [None, 16, 8], 16, "LayerNormalization")]
    choice = choose(ReportSection(), pair_of(rows), rows, set())
    assert len(choice.full) == 16 and choice.full[0] == "token_embedding" and choice.full[-1] == "layer_norm"
    depth = [int(name.rsplit("_", 1)[1]) for name in choice.full[1:-1]]
    assert max(b - a for a, b in zip(depth, depth[1:])) <= 3  # spread over the whole stack


def test_a_layer_read_twice_by_one_layer_is_not_a_block_output():
    rows = [row("a", ["input:x"], [None, 8], 1), row("mha", ["a", "a"], [None, 8], 1), row("b", ["mha"], [None, 8], 1)]
    assert block_outputs(rows, ["a", "mha", "b"]) == []


def test_brief_sections_are_bounded_too(caplog):
    """A NaN that propagates flags every layer after it: the earliest flagged layers get brief sections."""
    rows = residual(12)
    names = [r["path"] for r in rows]
    choice = choose(ReportSection(max_layers=8), pair_of(rows), rows, set(names))
    assert len(choice.brief) == 8 and choice.brief == [n for n in names if n not in choice.full][:8]
    assert set(choice.full) | set(choice.brief) | set(choice.hidden) == set(names)
    none = choose(ReportSection(layers=[{"type": "conv2d"}]), pair_of(rows), rows, set())  # case-sensitive type
    assert none.full == [] and "report.layers matches none of the 50 captured layers" in caplog.text
