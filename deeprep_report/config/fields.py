"""Building blocks shared by every config section: strict models and the ``layers:`` selector field."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


def layer_selectors(value: Any) -> Any:
    """``layers:`` is 'all', one selector, or a non-empty list of selectors."""
    if value == "all":
        return value
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"expected 'all' or a non-empty list of layer names or patterns, got {value!r}")
    return value


class Strict(BaseModel):
    """Unknown keys are errors, so a typo never silently falls back to a default."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

