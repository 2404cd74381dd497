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
    return data


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

