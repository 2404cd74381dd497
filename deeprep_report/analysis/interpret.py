"""Sentences about a depth analysis, written from the numbers by rules (docs/analysis.md).

No sentence is written for a particular model: each is a template chosen by
the shape of a profile (rising, falling, flat, peaked) and filled with measured
values and layer names.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

#: A change smaller than this (in accuracy, CKA or another fraction) counts as flat.
FLAT = 0.05
#: An interior value this much above both ends (relative) makes a profile peaked.
PEAK = 0.2


def shape(values: Sequence[float], flat: float = FLAT, relative: bool = False) -> str:
    """'rising', 'falling', 'peaked' or 'flat' for a profile in depth order (NaN entries ignored)."""
    points = [v for v in values if v is not None and math.isfinite(v)]
    if len(points) < 2:
        return "flat"
    first, last, top = points[0], points[-1], max(points)
    scale = max(abs(first), abs(last), 1e-12) if relative else 1.0
    interior = max(points[1:-1], default=-math.inf)
    if len(points) >= 3 and interior - max(first, last) > (PEAK if relative else flat) * scale and top == interior:
        return "peaked"
    if last - first >= flat * scale:
        return "rising"
    if first - last >= flat * scale:
        return "falling"
    return "flat"


def _finite(names: Sequence[str], values: Sequence[float | None]) -> tuple[list[str], list[float]]:
    kept = [(n, v) for n, v in zip(names, values) if v is not None and math.isfinite(v)]
    return [n for n, _ in kept], [v for _, v in kept]


def probes(names: Sequence[str], accuracies: Sequence[float | None], chance: float | None,
           input_basis: str = "pixels") -> str | None:
    """The probe profile over the model's layers; the input (layer 0), if present, is quoted for reference."""
    reference = None
    if names and names[0] == "input":
        reference, names, accuracies = accuracies[0], names[1:], accuracies[1:]
    names, values = _finite(names, accuracies)
    if len(values) < 2:
        return None
    kind = shape(values)
    chance_text = f" (chance: {chance:.2f})" if chance is not None else ""
    input_text = f" The input {input_basis} themselves give {reference:.2f}." if reference is not None else ""
    if kind == "flat" and max(values) - min(values) >= FLAT:  # the ends agree, a layer between does not
        low, high = values.index(min(values)), values.index(max(values))
        return (f"Probe accuracy is {values[0]:.2f} at {names[0]} and {values[-1]:.2f} at {names[-1]}{chance_text}, "
                f"but not in between: lowest at {names[low]} ({values[low]:.2f}), highest at {names[high]} "
                f"({values[high]:.2f}).{input_text}")
    if kind == "flat":
        return (f"Probe accuracy stays between {min(values):.2f} and {max(values):.2f} from {names[0]} to {names[-1]}"
                f"{chance_text}: depth does not change how linearly separable the classes are.{input_text}")
    gains = [(values[i + 1] - values[i], i) for i in range(len(values) - 1)]
    best = max(range(len(values)), key=lambda i: (values[i], -i))
    if kind in ("rising", "peaked"):
        gain, at = max(gains)
        text = (f"Probe accuracy rises from {values[0]:.2f} at {names[0]} to {values[best]:.2f} at {names[best]}"
                f"{chance_text}: classes become more linearly separable with depth; the largest gain is between "
                f"{names[at]} and {names[at + 1]} (+{gain:.2f}).")
        if values[best] - values[-1] >= FLAT:
            text += f" It ends lower, at {values[-1]:.2f} at {names[-1]}."
        return text + input_text
    loss, at = min(gains)
    return (f"Probe accuracy falls from {values[0]:.2f} at {names[0]} to {values[-1]:.2f} at {names[-1]}{chance_text}: "
            f"later layers keep less linearly decodable class information; the largest drop is between "
            f"{names[at]} and {names[at + 1]} ({loss:.2f}).{input_text}")


def baseline(names: Sequence[str], trained: Sequence[float | None], random: Sequence[float | None]) -> str | None:
    pairs = [(n, t, r) for n, t, r in zip(names, trained, random)
             if t is not None and r is not None and math.isfinite(t) and math.isfinite(r)]
    if not pairs:
        return None
    name, t, r = pairs[-1]
    widest = max(pairs, key=lambda p: p[1] - p[2])
    if abs(t - r) < FLAT:
        return (f"With random weights the same architecture reaches {r:.2f} at {name}, as the trained model does "
                f"({t:.2f}): at this depth training adds little linear class information.")
    return (f"With random weights the same architecture reaches {r:.2f} at {name} against {t:.2f} trained "
            f"({t - r:+.2f}); training adds the most at {widest[0]} ({widest[1] - widest[2]:+.2f}).")


def dimension(names: Sequence[str], estimates: Sequence[float | None]) -> str | None:
    names, values = _finite(names, estimates)
    if len(values) < 2:
        return None
    kind = shape(values, relative=True, flat=0.15)
    if kind == "peaked":
        peak = values.index(max(values))
        return (f"Intrinsic dimension rises from {values[0]:.1f} at {names[0]} to a peak of {values[peak]:.1f} at "
                f"{names[peak]} and falls to {values[-1]:.1f} at {names[-1]}: the hunchback profile reported for "
                f"trained networks (Ansuini et al. 2019).")
    if kind == "flat":
        return (f"Intrinsic dimension stays between {min(values):.1f} and {max(values):.1f} across layers: "
                f"no compression of the representation with depth.")
    verb = "rises" if kind == "rising" else "falls"
    return f"Intrinsic dimension {verb} from {values[0]:.1f} at {names[0]} to {values[-1]:.1f} at {names[-1]}."


def _measured(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def similarity(names: Sequence[str], matrix: Sequence[Sequence[float | None]]) -> str | None:
    if len(names) < 2:
        return None
    steps = [(matrix[i][i + 1], i) for i in range(len(names) - 1) if _measured(matrix[i][i + 1])]
    if not steps:
        return None
    ordered = sorted(value for value, _ in steps)
    median = ordered[len(ordered) // 2]
    value, at = min(steps)
    ends = (f", and {names[0]} and {names[-1]} have CKA {matrix[0][-1]:.2f}" if _measured(matrix[0][-1]) else "")
    return (f"Consecutive layers have a median CKA of {median:.2f}; the representation changes most between "
            f"{names[at]} and {names[at + 1]} (CKA {value:.2f}){ends}.")


def views(entries: Sequence[dict[str, Any]]) -> str | None:
    """Which layers entered whole and which as a count sketch (every number below is on these views)."""
    sketched = [e for e in entries if e["method"] == "count_sketch"]
    legacy = [e["layer"] for e in entries if e["method"] == "channel_means"]
    sequence = [e for e in entries if e["method"] in ("token_mean", "first_token", "last_token")]
    bag = [e["layer"] for e in entries if e["method"] == "bag_of_tokens"]
    parts = []
    if sequence:
        what = {"token_mean": "the mean over", "first_token": "the first of", "last_token": "the last of"}
        parts.append(f"{', '.join(e['layer'] for e in sequence)} entered as {what[sequence[0]['method']]} their real "
                     "tokens (padding left out)")
    if bag:
        parts.append(f"{bag[0]} entered as each sequence's bag of tokens (ids are types, not numbers)")
    if sketched:
        listed = ", ".join(f"{e['layer']} ({e['input_dims']:,})" for e in sketched)
        parts.append(f"{listed} entered as count sketches of their flattened activations to {sketched[0]['dims']:,} "
                     "values")
    if legacy:
        parts.append(f"{', '.join(legacy)} entered as channel means (their store has no views)")
    whole = len(entries) - len(sketched) - len(legacy) - len(sequence) - len(bag)
    if not parts:
        return "Every layer entered whole (its flattened activation): spatial and positional structure included."
    return f"Layers entered as their whole flattened activations ({whole} of {len(entries)}), except: " + \
        "; ".join(parts) + "."


def constant(names: Sequence[str], flags: Sequence[bool]) -> str | None:
    dull = [n for n, flag in zip(names, flags) if flag]
    if not dull:
        return None
    return (f"{', '.join(dull)} {'is' if len(dull) == 1 else 'are'} constant on these samples: there is no "
            "representation to measure there, and no number is shown for it.")


def training_change(names: Sequence[str], cka_with_random: Sequence[float | None]) -> str | None:
    """Where training moved the representation furthest from random weights (the input is the same in both)."""
    kept = [(n, v) for n, v in zip(names, cka_with_random) if n != "input"]
    names, values = _finite([n for n, _ in kept], [v for _, v in kept])
    if len(values) < 2:
        return None
    low = values.index(min(values))
    high = values.index(max(values))
    where = "later" if low >= len(values) / 2 else "earlier"
    return (f"Trained and randomly initialised layers are most alike at {names[high]} (CKA {values[high]:.2f}) "
            f"and least alike at {names[low]} ({values[low]:.2f}): training changed the {where} layers most.")


def centroids(names: Sequence[str], accuracies: Sequence[float | None]) -> str | None:
    names, values = _finite(names, accuracies)
    if len(values) < 2:
        return None
    kind = shape(values)
    if kind == "flat":
        return f"Nearest-class-centroid accuracy stays near {values[-1]:.2f}: class means separate no better with depth."
    verb = {"rising": "rises", "peaked": "rises then falls", "falling": "falls"}[kind]
    return (f"Nearest-class-centroid accuracy {verb} from {values[0]:.2f} at {names[0]} to {values[-1]:.2f} at "
            f"{names[-1]}: {'classes gather around their means' if kind != 'falling' else 'class means blur'} "
            "with depth.")


def paragraph(analysis: dict[str, Any], baseline_analysis: dict[str, Any] | None) -> list[str]:
    """The sentences for one pair, in reading order (those whose numbers exist)."""
    names = analysis["layers"]
    probe = analysis.get("probe") or []
    accuracy = [p["accuracy"] if p else None for p in probe]
    chance = next((p["chance"] for p in probe if p), None)
    geometry = analysis.get("geometry") or []
    classes = analysis.get("classes") or []
    sentences = [
        views(analysis["views"]) if analysis.get("views") else None,
        constant(names, analysis.get("constant") or []),
        probes(names, accuracy, chance, "tokens" if any(v["method"] == "bag_of_tokens" for v in
                                                        analysis.get("views") or []) else "pixels") if probe else None,
        baseline(names, accuracy, [p["accuracy"] if p else None for p in baseline_analysis.get("probe") or []])
        if baseline_analysis and probe else None,
        similarity(names, analysis["cka"]["matrix"]) if analysis.get("cka") else None,
        training_change(names, analysis["baseline"]["cka_with_trained"]) if analysis.get("baseline") else None,
        dimension(names, [g["intrinsic_dimension"] for g in geometry]) if geometry else None,
        centroids(names, [c["ncc_accuracy"] for c in classes]) if classes else None,
        *token_sentences(analysis.get("tokens")),
    ]
    return [s for s in sentences if s]


def token_sentences(tokens: dict[str, Any] | None) -> list[str]:
    """What each depth encodes about a token: per task, the layer where it is most decodable, against its control
    task there (selectivity = accuracy − control), and the last layer."""
    if not tokens:
        return []
    names = tokens["layers"]
    out = []
    for task, entry in tokens["tasks"].items():
        controls = entry.get("control") or [None] * len(names)
        kept = [(n, a, c) for n, a, c in zip(names, entry.get("accuracy") or [], controls) if a is not None]
        if not kept:
            continue
        name, accuracy, control = max(kept, key=lambda item: item[1])
        chance = f"chance {entry['chance']:.2f}"
        against = (f" against {control:.2f} on its control task (selectivity {accuracy - control:+.2f}; {chance})"
                   if control is not None else f" ({chance})")
        last = kept[-1]
        ending = "" if last[0] == name else f"; at {last[0]}, {last[1]:.2f}" + (
            f" (selectivity {last[1] - last[2]:+.2f})" if last[2] is not None else "")
        out.append(f"Token probe {task} ({entry['description']}): most decodable at {name}, accuracy "
                   f"{accuracy:.2f}{against}{ending}.")
    return out
