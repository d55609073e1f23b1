"""The suite JSON Schema, generated from the pydantic models and shipped in the package."""

from __future__ import annotations

import json
from pathlib import Path

from harness.suite.model import json_schema

SHIPPED = Path(__file__).with_name("suite.schema.json")


def generate_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def shipped_schema_text() -> str:
    return SHIPPED.read_text(encoding="utf-8")


def write_shipped() -> None:
    """Regenerate the shipped copy: `python -m harness.suite.schema`."""
    SHIPPED.write_text(generate_schema_text(), encoding="utf-8")


if __name__ == "__main__":
    write_shipped()
