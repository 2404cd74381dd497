"""Layer selectors, as written under ``layers:``: exact nested paths, layer names, the name of a nested
model (all its layers) and glob patterns. Shared by layer selection and the report's ``report.layers``."""

from __future__ import annotations

import fnmatch


def is_pattern(selector: str) -> bool:
    return any(ch in selector for ch in "*?[")


def matches(selector: str, path: str) -> bool:
    """Whether ``selector`` picks the layer at ``path``.

    A selector matches the whole path (exactly or as a glob), every layer under
    it when it names a nested model, and, when it has no ``/``, the layer's own
    name (the last path component).
    """
    if fnmatch.fnmatchcase(path, selector) or path.startswith(selector + "/"):
        return True
    return "/" not in selector and fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], selector)


def select(selectors: str | list[str], paths: list[str]) -> list[str]:
    """The paths any selector picks, in their given order ('all' picks every path)."""
    if selectors == "all":
        return list(paths)
    return [path for path in paths if any(matches(selector, path) for selector in selectors)]
