"""The one writer of config error text: a pydantic error becomes ``field.path`` and one line saying what
was expected (``expected an integer, got 'many'``, ``unknown key (did you mean 'limit'?)``)."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel

from deeprep_report.config.rules import RULE_MODELS, RULES
from deeprep_report.config.sections import Pipeline
from deeprep_report.errors import did_you_mean


def describe(error: dict[str, Any]) -> tuple[tuple[Any, ...], str]:
    """(field location, message) of a pydantic error, with pydantic's union and rule tags removed."""
    raw = tuple(error["loc"])
    loc = tuple(part for index, part in enumerate(raw) if not _is_union_tag(part) and not _is_rule_tag(raw, index))
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc += ("rule",)
    return loc, _describe(error, loc, raw)


def _is_rule_tag(loc: tuple[Any, ...], index: int) -> bool:
    """Pydantic puts the discriminator value of a check (``checks[0].dead_units.max``) into locations."""
    return index >= 2 and loc[index - 2] == "checks" and isinstance(loc[index - 1], int) and loc[index] in RULES


def _is_union_tag(part: Any) -> bool:
    """Pydantic inserts the union member's type name into error locations; drop it."""
    return isinstance(part, str) and ("[" in part or part in ("str", "int", "float", "bool", "dict", "list"))


_EXPECTED = {
    "missing": "required key is missing",
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "string_type": "expected a string",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "dict_type": "expected a mapping (key: value)",
    "model_type": "expected a mapping (key: value)",
    "model_attributes_type": "expected a mapping (key: value)",
}


def _describe(error: dict[str, Any], loc: tuple[Any, ...], raw: tuple[Any, ...]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        return f"unknown key{did_you_mean(key, _allowed_keys(raw[:-1]), allowed_list=True)}"
    if kind == "union_tag_invalid":
        tag = str(error.get("ctx", {}).get("tag", ""))
        return f"unknown rule {tag!r}{did_you_mean(tag, RULES, allowed_list=True)}"
    if kind == "union_tag_not_found":
        return f"required key is missing; expected one of: {', '.join(RULES)}"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind in _EXPECTED:
        message = _EXPECTED[kind]
    else:
        message = str(error["msg"]).replace("Input should be", "expected", 1)
        message = message.replace("List should have at least 1 item after validation, not 0", "expected at least one entry")
    if kind != "missing":
        message += f", got {_show(error.get('input'))}"
    return message


def _show(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The field names of the config section at ``loc`` (for 'did you mean')."""
    cls: Any = Pipeline
    for part in loc:
        if isinstance(part, int) or _is_union_tag(part):
            continue
        if part in RULES and cls is None:
            cls = RULE_MODELS[part]
            continue
        field = cls.model_fields.get(part) if isinstance(cls, type) and issubclass(cls, BaseModel) else None
        if field is None:
            return []
        cls = None if part == "checks" else _model_in(field.annotation)
    return list(cls.model_fields) if isinstance(cls, type) and issubclass(cls, BaseModel) else []


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None

