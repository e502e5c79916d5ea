"""How big a document is once its fragments are expanded, measured without expanding them.

Twenty fragments that each spread the next one twice stand for 2^20 fields in
0.8 KB; a walker that follows spreads one by one takes seconds on that, and
minutes at thirty. Here each fragment is measured once, after the fragments it
spreads (in the order of a depth-first walk of the spread graph, without
recursion), and a spread adds its fragment's measure: the work is linear in the
document's size, whatever it expands to. Counts stop growing just past ``cap``
so the arithmetic stays small.

This is what :mod:`graphql_api.hardening.query_limits.guard` checks before graphql-core's
validation (and
every other walker of the document) runs, so those only ever see documents
whose expansion is within the limits.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)


@dataclass(frozen=True, slots=True)
class Shape:
    """Parameters:
    fields: field selections once fragments are expanded (at most the cap).
    aliases: aliased fields once fragments are expanded (at most the cap).
    depth: object fields on the longest path; introspection fields (``__schema``,
    ``__type``) and what is under them do not count, as in Strawberry's depth limit.
    nesting: selection sets on the longest path, through fragments, everything counted.
    """

    fields: int = 0
    aliases: int = 0
    depth: int = 0
    nesting: int = 0


def document_shape(document: DocumentNode, cap: int) -> Shape:
    """The shape of every operation of ``document`` together (sizes add, depths max)."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    measured: dict[str, Shape] = {}
    for name in _dependencies_first(fragments):
        measured[name] = _measure(fragments[name].selection_set, measured, cap)
    total = Shape()
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            total = _add(total, _measure(definition.selection_set, measured, cap), cap)
    return total


def _dependencies_first(fragments: Mapping[str, FragmentDefinitionNode]) -> Iterator[str]:
    """Fragment names, each after the ones it spreads (a spread closing a cycle is ignored)."""
    done: set[str] = set()
    for root in fragments:
        if root in done:
            continue
        path = [(root, iter(_spreads(fragments[root].selection_set)))]
        on_path = {root}
        while path:
            name, spreads = path[-1]
            for spread in spreads:
                if spread in fragments and spread not in done and spread not in on_path:
                    path.append((spread, iter(_spreads(fragments[spread].selection_set))))
                    on_path.add(spread)
                    break
            else:
                path.pop()
                on_path.discard(name)
                done.add(name)
                yield name


def _spreads(selection_set: SelectionSetNode) -> Iterator[str]:
    stack = [selection_set]
    while stack:
        for selection in stack.pop().selections:
            if isinstance(selection, FragmentSpreadNode):
                yield selection.name.value
            elif selection.selection_set is not None:  # type: ignore[attr-defined]
                stack.append(selection.selection_set)  # type: ignore[attr-defined]


def _measure(selection_set: SelectionSetNode, measured: Mapping[str, Shape], cap: int) -> Shape:
    # Recursion follows the nesting inside one definition, which the parser bounds.
    fields = aliases = depth = nesting = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            fields += 1
            aliases += selection.alias is not None
            if selection.selection_set is None:
                continue
            inner = _measure(selection.selection_set, measured, cap)
            nesting = max(nesting, inner.nesting + 1)
            if not selection.name.value.startswith("__"):
                depth = max(depth, inner.depth + 1)
        elif isinstance(selection, InlineFragmentNode):
            inner = _measure(selection.selection_set, measured, cap)
            nesting = max(nesting, inner.nesting + 1)
            depth = max(depth, inner.depth)
        elif isinstance(selection, FragmentSpreadNode):
            inner = measured.get(selection.name.value, Shape())
            nesting = max(nesting, inner.nesting)
            depth = max(depth, inner.depth)
        else:  # pragma: no cover - no other selection kinds exist
            continue
        fields = min(fields + inner.fields, cap)
        aliases = min(aliases + inner.aliases, cap)
    return Shape(min(fields, cap), min(aliases, cap), depth, nesting)


def _add(a: Shape, b: Shape, cap: int) -> Shape:
    return Shape(
        min(a.fields + b.fields, cap),
        min(a.aliases + b.aliases, cap),
        max(a.depth, b.depth),
        max(a.nesting, b.nesting),
    )
