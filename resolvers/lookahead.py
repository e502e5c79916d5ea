"""Which fields the client selected below the current one.

List resolvers use it to prefetch only the related rows the query will read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from graphql import VariableNode
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection

from resolvers.context import Info


def selects(info: Info, *path: str) -> bool:
    """Does the selection below this field reach ``path`` (``"edges", "node", "strategy"``)?"""
    level: list[Selection] = [child for field in info.selected_fields for child in field.selections]
    for name in path:
        matches = [field for field in _fields(level) if field.name == name]
        if not matches:
            return False
        level = [child for field in matches for child in field.selections]
    return True


def _fields(selections: Iterable[Selection]) -> Iterator[SelectedField]:
    """Fields at this level, looking through fragments."""
    for selection in selections:
        if isinstance(selection, SelectedField):
            yield selection
        elif isinstance(selection, (FragmentSpread, InlineFragment)):
            yield from _fields(selection.selections)


def wrote_argument(info: Info, name: str) -> bool:
    """Did the client give argument ``name`` on this field (rather than take its default)?

    An argument written as a variable counts only when the variable has a value.
    """
    for node in info._raw_info.field_nodes:
        for argument in node.arguments or ():
            if argument.name.value != name:
                continue
            if isinstance(argument.value, VariableNode):
                return argument.value.name.value in info.variable_values
            return True
    return False
