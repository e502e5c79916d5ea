"""schema.graphql is the contract: CI fails when the code's schema and the file differ."""

from __future__ import annotations

from pathlib import Path

from graphql import build_schema
from graphql.utilities import find_breaking_changes

from schema import schema

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"


def test_checked_in_schema_matches_the_code() -> None:
    expected = schema.as_str() + "\n"
    assert SCHEMA_FILE.read_text() == expected, (
        "schema.graphql is out of date: run `quantgraph export-schema --output schema.graphql` "
        "and review the diff (deprecate with @deprecated(reason: ...) rather than removing)"
    )


def test_schema_file_is_valid_and_has_no_breaking_changes_against_itself() -> None:
    document = build_schema(SCHEMA_FILE.read_text())
    assert find_breaking_changes(document, build_schema(schema.as_str())) == []


def test_every_type_and_field_is_described() -> None:
    missing = []
    for name, graphql_type in schema._schema.type_map.items():
        if name.startswith("__") or name in {"String", "Int", "Float", "Boolean", "ID"}:
            continue
        if not graphql_type.description:
            missing.append(name)
        for field_name, field in getattr(graphql_type, "fields", {}).items():
            if not field.description:
                missing.append(f"{name}.{field_name}")
    assert missing == []
