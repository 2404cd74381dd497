"""``--set key.path=value`` overrides, field paths (``models[0].layers``) and ``run.preset`` defaults."""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass
from typing import Any

import yaml

from deeprep_report.errors import UserError


@dataclass(frozen=True)
class Override:
    text: str
    loc: tuple[str | int, ...]


_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_field_path(path: str) -> tuple[str | int, ...]:
    """``models[0].layers`` -> ``('models', 0, 'layers')``; the inverse of :func:`format_loc`."""
    loc: list[str | int] = []
    pos = 0
    for match in _TOKEN.finditer(path):
        gap = path[pos : match.start()]
        if gap not in ("", "."):
            raise ValueError(path)
        loc.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        pos = match.end()
    if not loc or pos != len(path):
        raise ValueError(path)
    return tuple(loc)


def format_loc(loc: typing.Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def apply_override(raw: dict[str, Any], item: str) -> Override:
    """Apply one ``--set key.path=value`` (value parsed as YAML) to the raw config."""
    key, sep, value_text = item.partition("=")
    try:
        if not sep:
            raise ValueError(item)
        loc = parse_field_path(key.strip())
    except ValueError:
        raise UserError(f"--set {item!r}: expected key.path=value, e.g. run.seed=1 or datasets[0].limit=100") from None
    try:
        value = yaml.safe_load(value_text) if value_text.strip() else None
    except yaml.YAMLError as exc:
        raise UserError(f"--set {item}: value is not valid YAML: {exc}") from None
    node: Any = raw
    for depth, part in enumerate(loc[:-1]):
        where = format_loc(loc[: depth + 1])
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                size = len(node) if isinstance(node, list) else 0
                raise UserError(f"--set {item}: {where}: no such entry ({size} given)")
            node = node[part]
        else:
            if not isinstance(node, dict):
                raise UserError(f"--set {item}: {format_loc(loc[:depth])} is not a mapping")
            node = node.setdefault(part, [] if isinstance(loc[depth + 1], int) else {})
    last = loc[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last > len(node):
            raise UserError(f"--set {item}: {format_loc(loc)}: no such entry")
        if last == len(node):
            node.append(value)
        else:
            node[last] = value
    else:
        if not isinstance(node, dict):
            raise UserError(f"--set {item}: {format_loc(loc[:-1])} is not a mapping")
        node[last] = value
    return Override(item, loc)


#: What each ``run.preset`` changes, unless the file sets the key itself.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "full": {"analysis": {"random_baseline": True}},
    "minimal": {"analysis": {"enabled": False}},
}


def apply_preset(raw: dict[str, Any]) -> None:
    """Fill in the preset's defaults (explicit keys win)."""
    run = raw.get("run") if isinstance(raw.get("run"), dict) else {}
    preset = PRESETS.get(run.get("preset"), {})
    for section, values in preset.items():
        if isinstance(raw.get(section, {}), dict):
            target = raw.setdefault(section, {})
            for key, value in values.items():
                target.setdefault(key, value)

