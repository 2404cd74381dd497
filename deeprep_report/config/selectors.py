"""Layer selectors, as written under ``layers:``: exact nested paths, layer names, the name of a nested
model (all its layers) and glob patterns, or mappings ``{type: Conv2D, glob: "block_*", case: insensitive}``
that pick layers by Keras class name and glob. Shared by layer selection (extract), the checks and the
report's ``report.layers``, which pass each layer's class name beside its path: one matching rule for all."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from deeprep_report.config.fields import Strict


class LayerSelector(Strict):
    """A mapping entry of ``layers:``: layers by Keras class name and/or glob; with both, a layer must match
    both."""

    type: str | list[str] | None = Field(
        None, description="Keras class name of the layer, exact (Conv2D), or a list of them "
                          "([Conv2D, DepthwiseConv2D]).")
    glob: str | None = Field(
        None, description="Glob on the nested path as a string selector is (without '/', also on the layer's "
                          "own name), e.g. '*conv*'.")
    case: Literal["sensitive", "insensitive"] = Field(
        "sensitive", description="insensitive: type and glob ignore upper and lower case.")

    @field_validator("type", mode="before")
    @classmethod
    def _class_names(cls, value: Any) -> Any:
        names = [value] if isinstance(value, str) else value
        if names is not None and not (isinstance(names, list) and names
                                      and all(isinstance(name, str) and name.strip() for name in names)):
            raise ValueError(f"expected a Keras class name such as Conv2D, or a non-empty list of them, got {value!r}")
        return value

    @field_validator("glob")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value == "":
            raise ValueError("expected a pattern such as '*conv*', got ''")
        return value

    @model_validator(mode="after")
    def _something_to_match(self) -> "LayerSelector":
        if self.type is None and self.glob is None:
            raise ValueError("a selector mapping needs type, glob or both, e.g. {type: Conv2D} or {glob: '*conv*'}")
        return self

    @property
    def types(self) -> list[str] | None:
        return [self.type] if isinstance(self.type, str) else self.type

    def describe(self) -> str:
        """The selector as written (keys left at their default are left out), for error messages."""
        parts = []
        if self.type is not None:
            parts.append(f"type: {self.type if isinstance(self.type, str) else '[' + ', '.join(self.type) + ']'}")
        if self.glob is not None:
            parts.append(f"glob: {self.glob!r}")
        if self.case != "sensitive":
            parts.append(f"case: {self.case}")
        return "{" + ", ".join(parts) + "}"


#: One entry of ``layers:``. Discriminated, so an error comes from the one branch that applies; the tags are
#: named like the types pydantic puts into error locations, which the config's error text drops
#: (config/messages.py), so an error reads ``layers[1].glob``, not ``layers.list[...].1.LayerSelector.glob``.
Selector = Annotated[
    Union[Annotated[str, Tag("str")], Annotated[LayerSelector, Tag("dict")]],
    Discriminator(lambda value: "str" if isinstance(value, str) else "dict"),
]

#: The type of a ``layers:`` field: 'all' or a list of selectors.
Selectors = Annotated[
    Union[Annotated[Literal["all"], Tag("str")], Annotated[list[Selector], Tag("list")]],
    Discriminator(lambda value: "str" if isinstance(value, str) else "list"),
]


#: ``report.layers``: also 'auto' (report/layer_choice.py).
ReportSelectors = Annotated[
    Union[Annotated[Literal["all", "auto"], Tag("str")], Annotated[list[Selector], Tag("list")]],
    Discriminator(lambda value: "str" if isinstance(value, str) else "list"),
]


def is_pattern(selector: str | LayerSelector) -> bool:
    """Whether a selector may pick several layers (and skips those it cannot capture): a glob or a mapping."""
    return isinstance(selector, LayerSelector) or any(ch in selector for ch in "*?[")


def _path_matches(pattern: str, path: str, fold: bool = False) -> bool:
    """A pattern matches the whole path (exactly or as a glob), every layer under it when it names a nested
    model, and, when it has no ``/``, the layer's own name (the last path component)."""
    if fold:
        pattern, path = pattern.lower(), path.lower()
    if fnmatch.fnmatchcase(path, pattern) or path.startswith(pattern + "/"):
        return True
    return "/" not in pattern and fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], pattern)


def matches(selector: str | LayerSelector, path: str, class_name: str | None = None) -> bool:
    """Whether ``selector`` picks the layer at ``path`` whose Keras class is ``class_name`` (None: unknown,
    which no ``type`` matches)."""
    if isinstance(selector, str):
        return _path_matches(selector, path)
    fold = selector.case == "insensitive"
    if selector.types is not None:
        wanted = {name.lower() for name in selector.types} if fold else set(selector.types)
        if class_name is None or (class_name.lower() if fold else class_name) not in wanted:
            return False
    return selector.glob is None or _path_matches(selector.glob, path, fold)


def select(selectors: Any, layers: Mapping[str, str | None]) -> list[str]:
    """The paths any selector picks, in the order of ``layers`` (path -> Keras class name; 'all' picks every
    path)."""
    if selectors == "all":
        return list(layers)
    return [path for path, class_name in layers.items()
            if any(matches(selector, path, class_name) for selector in selectors)]


def describe(selector: str | LayerSelector) -> str:
    """A selector as written, for messages."""
    return repr(selector) if isinstance(selector, str) else selector.describe()


def layer_selectors(value: Any) -> Any:
    """``layers:`` is 'all', one selector, or a non-empty list of selectors (names, patterns, or mappings that
    pydantic then validates as ``LayerSelector``)."""
    if value == "all":
        return value
    if isinstance(value, (str, dict)):
        value = [value]
    if not isinstance(value, list) or not value or not all(_selector_shape(v) for v in value):
        raise ValueError("expected 'all' or a non-empty list of layer names, patterns or {type: ..., glob: ...} "
                         f"mappings, got {value!r}")
    return value


def _selector_shape(value: Any) -> bool:
    return (isinstance(value, str) and bool(value)) or isinstance(value, (dict, LayerSelector))
