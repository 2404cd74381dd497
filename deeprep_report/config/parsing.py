"""YAML reading: ``safe_load`` semantics, duplicate keys refused, the document must be a mapping."""

from __future__ import annotations

from typing import Any

import yaml

from deeprep_report.errors import ConfigError


def parse_yaml(text: str, source: str) -> dict[str, Any]:
    """``yaml.safe_load`` that also refuses duplicate keys and non-mapping documents."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(source, where, f"invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, "", f"invalid YAML: {exc}") from None
    if data is None:
        raise ConfigError(source, "", "file is empty; expected keys run, models, datasets")
    if not isinstance(data, dict):
        raise ConfigError(source, "", f"expected a mapping with keys run, models, datasets, got {type(data).__name__}")
    check_size(data, source)
    return data


def check_size(data: Any, source: str) -> None:
    """Refuse a document that expands to more than :data:`MAX_VALUES` values, before anything walks it."""
    if expanded_size(data, MAX_VALUES) > MAX_VALUES:
        raise ConfigError(source, "", f"the file expands to more than {MAX_VALUES:,} values (YAML aliases repeated "
                          "inside each other?); a pipeline is far smaller")


#: Values (scalars, lists, mappings) a pipeline may expand to: a real one has hundreds. YAML aliases are shared
#: references, so a few lines can stand for billions of values (an "alias bomb"); they are counted as expanded.
MAX_VALUES = 100_000


def expanded_size(node: Any, limit: int, _memo: dict[int, int] | None = None) -> int:
    """How many values ``node`` holds once every alias is expanded (stops counting past ``limit``); memoised by
    identity, so counting costs the number of distinct nodes, not the expansion."""
    memo = {} if _memo is None else _memo
    if not isinstance(node, (dict, list)):
        return 1
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = limit + 1  # a cycle counts as too large
    children = list(node.keys()) + list(node.values()) if isinstance(node, dict) else node
    total = 1
    for child in children:
        total += expanded_size(child, limit, memo)
        if total > limit:
            break
    memo[id(node)] = total
    return total


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (YAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

