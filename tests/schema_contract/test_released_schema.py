"""Clients built against the released schema keep working: nothing is removed or
changed incompatibly without first being deprecated in a release.

``schema.released.graphql`` is the schema of the last release (copied from
``schema.graphql`` when releasing). A field may disappear only if it was
already ``@deprecated`` there; every other breaking change fails the suite.
"""

from __future__ import annotations

import re
from pathlib import Path

from graphql import GraphQLObjectType, GraphQLSchema, build_schema
from graphql.utilities import BreakingChangeType, find_breaking_changes

from schema import schema

RELEASED = Path(__file__).resolve().parents[2] / "schema.released.graphql"


def deprecated_in(released: GraphQLSchema, description: str) -> bool:
    """Was the field named by a FIELD_REMOVED change ("Field Type.field was removed.")
    deprecated?"""
    named = re.search(r"(\w+)\.(\w+) was removed", description)
    if named is None:
        return False
    type_name, field_name = named.groups()
    released_type = released.type_map.get(type_name)
    if not isinstance(released_type, GraphQLObjectType):
        return False
    field = released_type.fields.get(field_name)
    return field is not None and field.deprecation_reason is not None


def unannounced_breaking_changes(released: GraphQLSchema, current: GraphQLSchema) -> list[str]:
    return [
        f"{change.type.name}: {change.description}"
        for change in find_breaking_changes(released, current)
        if not (
            change.type is BreakingChangeType.FIELD_REMOVED
            and deprecated_in(released, change.description)
        )
    ]


def test_no_breaking_change_against_the_released_schema() -> None:
    problems = unannounced_breaking_changes(
        build_schema(RELEASED.read_text()), build_schema(schema.as_str())
    )
    assert problems == [], (
        "breaking changes against the released schema: deprecate first "
        "(@deprecated(reason: ...)) and remove in a later release"
    )


def test_the_check_catches_removal_and_allows_removal_after_deprecation() -> None:
    released = build_schema(
        'type Query { kept: Int, old: Int @deprecated(reason: "use kept"), plain: Int }'
    )
    current = build_schema("type Query { kept: Int }")
    assert unannounced_breaking_changes(released, current) == [
        "FIELD_REMOVED: Field Query.plain was removed."
    ]


def test_every_deprecation_gives_a_reason() -> None:
    silent = [
        f"{type_name}.{field_name}"
        for type_name, graphql_type in schema._schema.type_map.items()
        for field_name, field in getattr(graphql_type, "fields", {}).items()
        if field.deprecation_reason is not None
        and field.deprecation_reason.strip() in {"", "No longer supported"}
    ]
    assert silent == []
