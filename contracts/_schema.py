"""Exporting the contracts' JSON Schema files, identically on every Python version."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import msgspec

__all__ = ["SCHEMA_DIR", "json_schema", "write_schema_files"]

SCHEMA_DIR = Path(__file__).parent / "schemas"


def _clean_descriptions(node: Any) -> Any:
    # Docstrings keep their indentation before Python 3.13 and lose it from 3.13 on; cleaning
    # them here makes the exported file the same whichever interpreter wrote it.
    if isinstance(node, dict):
        return {
            key: inspect.cleandoc(value)
            if key == "description" and isinstance(value, str)
            else _clean_descriptions(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_clean_descriptions(item) for item in node]
    return node


def json_schema(struct: Any) -> dict[str, Any]:
    """The JSON Schema of one contract type, descriptions cleaned of source indentation."""
    schema: dict[str, Any] = _clean_descriptions(msgspec.json.schema(struct))
    return schema


def write_schema_files(schemas: dict[str, dict[str, Any]]) -> None:
    SCHEMA_DIR.mkdir(exist_ok=True)
    for name, schema in schemas.items():
        (SCHEMA_DIR / name).write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
