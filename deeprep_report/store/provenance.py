"""What produced a run: tool and package versions, platform, UTC timestamps."""

from __future__ import annotations

import platform
import sys
from datetime import datetime, timezone
from importlib import metadata

from deeprep_report import __version__

PACKAGES = ("tensorflow", "keras", "numpy", "h5py", "numba", "pydantic", "pyyaml", "jinja2", "matplotlib",
            "scikit-learn", "tqdm")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages whose behaviour shapes the numbers ('missing' when absent)."""
    versions = {"deeprep-report": __version__, "python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def platform_info() -> dict[str, str]:
    return {"system": platform.system(), "machine": platform.machine(), "python_implementation":
            platform.python_implementation(), "executable": sys.executable}


def utc_now(timestamp: float | None = None) -> str:
    """ISO 8601 UTC timestamp with seconds, e.g. 2026-11-27T02:30:08Z: now, or of a ``time.time()`` value."""
    moment = datetime.now(timezone.utc) if timestamp is None else datetime.fromtimestamp(timestamp, timezone.utc)
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")
