"""The JSON Schema of ``pipeline.yaml`` (``deeprep schema``), for editors."""

from __future__ import annotations

from typing import Any

from deeprep_report.config.sections import Pipeline


def json_schema() -> dict[str, Any]:
    """JSON Schema of ``pipeline.yaml`` for editors (``deeprep schema``)."""
    schema = Pipeline.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "deeprep-report pipeline.yaml"
    return schema
