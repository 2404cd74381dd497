"""How numbers read in the report (also the templates' ``number`` and ``percent`` filters)."""

from __future__ import annotations

import math


def number(value: float | None) -> str:
    """3 significant digits; 'n/a' for a missing (non-finite) number."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if value == 0:
        return "0"
    return f"{value:.3g}" if 1e-3 <= abs(value) < 1e5 else f"{value:.2e}"


def percent(fraction: float | None) -> str:
    """A fraction as a percentage with sensible precision ('0 %', '0.012 %', '12.5 %', '100 %')."""
    if fraction is None or not math.isfinite(fraction):
        return "n/a"
    value = 100 * fraction
    if value == 0 or value == 100:
        return f"{value:.0f} %"
    return f"{value:.3g} %" if value < 1 else f"{value:.1f} %"
