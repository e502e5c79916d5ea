"""Query limits, checked before any resolver runs and before graphql-core's validation.

- tokens (``TOO_MANY_TOKENS``): the parser stops past the limit, so a huge
  document costs no more than the limit to reject;
- then, in one pass linear in the document's size whatever its fragments
  expand to (:mod:`.document_shape`, :mod:`.cost`):
  fields once fragments are expanded (``QUERY_TOO_COMPLEX``), nesting and depth
  (``QUERY_TOO_DEEP``), aliases (``TOO_MANY_ALIASES``) and cost
  (``QUERY_TOO_COMPLEX``). A document over any of them is refused there, and
  graphql-core's validation rules never see it;
- graphql-core's validation, with the check that overlapping fields can be
  merged (quadratic in the fields sharing a response name) held to a budget of
  ``OVERLAP_BUDGET`` comparisons (``QUERY_TOO_COMPLEX`` past it);
- introspection can be switched off (``INTROSPECTION_DISABLED``).

With a :class:`~graphql_api.hardening.query_limits.document_cache.DocumentCache`,
a document seen before is neither parsed, measured nor validated again: its
tree, shape and validation errors come from the cache, while the limits are
compared and the cost computed from this request's variables every time.

The cost is reported in the response (``extensions.cost``) and weights rate
limits. Refusals are request errors, so the GraphQL-over-HTTP layer answers 400.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    OverlappingFieldsCanBeMergedRule,
    ValidationContext,
)
from graphql.validation import NoSchemaIntrospectionCustomRule
from graphql.validation.validate import ValidationAbortedError
from strawberry.extensions import MaxTokensLimiter, SchemaExtension

from graphql_api.hardening.query_limits.cost import operation_cost, priced_operation
from graphql_api.hardening.query_limits.document_cache import (
    MAX_KNOWN_COSTS,
    CachedDocument,
    DocumentCache,
    document_digest,
)
from graphql_api.hardening.query_limits.document_shape import Shape, document_shape

ExtensionFactory = Callable[[], SchemaExtension]

# Units of graphql-core's overlapping-fields budget (a comparison of two fields
# costs 2). Only fields that share a response name spend any: the README's and
# the benchmarks' documents and GraphiQL's introspection spend 0, thirty copies
# of `me { username }` spend 2,175, and 300 copies 224,000 (0.7 s of CPU)
# against graphql-core's default of 500,000. 1,000 units take a few ms at most
# (bench.hostile_documents) and admit some 20 repeats of a field in one selection.
OVERLAP_BUDGET = 1_000


@dataclass(frozen=True, slots=True)
class QueryLimits:
    max_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 5000
    max_cost: int = 10_000
    max_fields: int = 1000
    list_size: int = 20
    introspection: bool = True

    @property
    def max_nesting(self) -> int:
        """Selection sets nested through fragments, everything counted (introspection
        too): well past any real document, and low enough for recursive walkers."""
        return 2 * self.max_depth + 16

    @property
    def shape_cap(self) -> int:
        """Where the shape's counts stop growing: just past the largest count limit."""
        return max(self.max_fields, self.max_aliases) + 1


def limit_extensions(
    limits: QueryLimits, cache: DocumentCache | None = None
) -> list[ExtensionFactory]:
    """The extensions enforcing ``limits``, as per-request factories; ``cache`` keeps
    parsed and validated documents across requests."""
    if cache is not None and not cache.enabled:
        cache = None
    return [lambda: TokenLimit(limits.max_tokens), lambda: DocumentLimits(limits, cache)]


class NoIntrospection(NoSchemaIntrospectionCustomRule):
    """graphql-core's rule (what Strawberry's ``DisableIntrospection`` adds), with a code."""

    def report_error(self, error: GraphQLError) -> None:
        error.extensions = {**(error.extensions or {}), "code": "INTROSPECTION_DISABLED"}
        super().report_error(error)


class BudgetedOverlappingFields(OverlappingFieldsCanBeMergedRule):
    """graphql-core's rule, aborting after ``OVERLAP_BUDGET`` units of work with a code."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.rule_context.remaining_complexity_budget = OVERLAP_BUDGET

    def enter_selection_set(self, *args: Any) -> None:
        try:
            super().enter_selection_set(*args)
        except ValidationAbortedError:
            raise ValidationAbortedError(
                "Too many overlapping fields to check: "
                "select each field once, or use fewer fragments that repeat fields",
                extensions={"code": "QUERY_TOO_COMPLEX", "maximumComparisons": OVERLAP_BUDGET},
            ) from None


class TokenLimit(MaxTokensLimiter):
    """Strawberry's token limit, with its own error code instead of a parse failure."""

    def on_parse(self) -> Iterator[None]:
        yield
        for error in self.execution_context.pre_execution_errors or []:
            if "tokens. Parsing aborted." in error.message:
                error.extensions = {
                    **(error.extensions or {}),
                    "code": "TOO_MANY_TOKENS",
                    "maximumTokens": self.max_token_count,
                }


class DocumentLimits(SchemaExtension):
    """Refuses a document over a limit before graphql-core's validation runs.

    Setting ``pre_execution_errors`` before validation makes Strawberry skip it.
    The cost lands in ``extensions_results["cost"]`` (``{"requested", "maximum"}``),
    which Strawberry returns as ``extensions.cost`` and the rate limit reads.

    With a ``cache``, parsing a known text is skipped (the tree is set before
    Strawberry would parse), and so is validating a known document (its errors,
    none for a valid one, are set before Strawberry would validate). A new text
    is parsed and validated by Strawberry as usual and the outcome kept
    afterwards. The limits are compared on every request, cached or not.

    Parameters:
    limits: the query limits.
    cache: the app's document cache, or None to parse and validate every time.
    """

    def __init__(self, limits: QueryLimits, cache: DocumentCache | None = None) -> None:
        self.limits = limits
        self.cache = cache
        self._entry: CachedDocument | None = None

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        query = context.query
        if self.cache is None or context.graphql_document is not None or not isinstance(query, str):
            yield
            return
        digest, size = document_digest(query)
        max_tokens = context.parse_options.get("max_tokens")
        entry = self.cache.get(digest, max_tokens)
        if entry is not None:
            context.graphql_document = entry.document  # Strawberry does not parse then
        yield
        document = context.graphql_document
        if entry is None and document is not None and not context.pre_execution_errors:
            entry = self.cache.put(digest, size, document, max_tokens)
        self._entry = entry

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        learning: tuple[CachedDocument, GraphQLSchema, tuple[Any, ...]] | None = None
        if document is not None and context.pre_execution_errors is None:
            # graphql-core's schema: Strawberry has no public accessor for it.
            schema = context.schema._schema
            entry = self._entry
            if entry is not None and entry.document is not document:
                entry = None  # another extension replaced the tree
            errors, cost = self._refusals(schema, document, entry)
            if cost is not None:
                self._report_cost(cost)
            if errors:
                context.pre_execution_errors = errors
            else:
                rules = validation_rules(context.validation_rules, self.limits.introspection)
                context.validation_rules = rules
                if entry is not None:
                    known = entry.validation_errors(schema, rules)
                    if known is not None:
                        context.pre_execution_errors = known  # [] when valid: Strawberry skips
                    else:
                        learning = entry, schema, rules
        yield
        if learning is not None and context.pre_execution_errors is not None:
            entry, schema, rules = learning
            entry.remember_validation(schema, rules, context.pre_execution_errors)

    def prepare(self, rules: tuple[Any, ...], admits: Callable[[DocumentNode], bool]) -> bool:
        """Do what this extension's parsing and validation hooks would, for a document
        they already know is valid: the cached tree, the limits compared and the cost
        from this request's variables, validation's answer (no errors). True when that
        is all there is to it, and the request may skip both stages; False, with the
        request untouched, otherwise (a new text, an invalid document, a limit over).

        ``rules``: the validation rules as the extensions before this one leave them;
        ``admits``: whether the other extensions' checks pass this document.
        """
        context = self.execution_context
        query = context.query
        cache = self.cache
        if cache is None or context.graphql_document is not None or not isinstance(query, str):
            return False
        digest, _ = document_digest(query)
        entry = cache.peek(digest, context.parse_options.get("max_tokens"))
        if entry is None:
            return False
        schema = context.schema._schema
        rules = validation_rules(rules, self.limits.introspection)
        if not entry.known_valid(schema, rules) or not admits(entry.document):
            return False
        context.graphql_document = entry.document  # what the operation name is read from
        errors, cost = self._refusals(schema, entry.document, entry)
        if errors or cost is None:
            context.graphql_document = None
            return False
        cache.hit(digest)
        cache.prepared += 1
        self._entry = entry
        self._report_cost(cost)
        context.validation_rules = rules
        context.pre_execution_errors = []
        return True

    def _refusals(
        self, schema: GraphQLSchema, document: DocumentNode, entry: CachedDocument | None
    ) -> tuple[list[GraphQLError], int | None]:
        """:func:`refusals` for this request's operation and variables (``entry``: the
        document's cache entry, whose shape and fixed costs it reuses)."""
        context = self.execution_context
        return refusals(
            self.limits,
            schema,
            document,
            context.operation_name,
            context.variables or {},
            shape=self._shape(entry, document),
            known_costs=None if entry is None else entry.costs,
        )

    def _report_cost(self, cost: int) -> None:
        """``extensions.cost`` of the response, which the rate limit also reads."""
        self.execution_context.extensions_results["cost"] = {
            "requested": cost,
            "maximum": self.limits.max_cost,
        }

    def _shape(self, entry: CachedDocument | None, document: DocumentNode) -> Shape:
        cap = self.limits.shape_cap
        if entry is not None and entry.shape is not None and entry.shape[0] == cap:
            return entry.shape[1]
        shape = document_shape(document, cap=cap)
        if entry is not None:
            entry.shape = (cap, shape)
        return shape


def refusals(
    limits: QueryLimits,
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    *,
    shape: Shape | None = None,
    known_costs: dict[tuple[GraphQLSchema, str | None, int], int] | None = None,
) -> tuple[list[GraphQLError], int | None]:
    """The limits ``document`` is over, and its cost (None when too deep to price,
    or not asked for: ``variables`` None). ``shape``: the document's, if already measured
    (with ``limits.shape_cap``). ``known_costs``: the cached document's costs that no
    variable goes into, read and filled here.

    Linear in the document's size, whatever its fragments expand to.
    """
    if shape is None:
        shape = document_shape(document, cap=limits.shape_cap)
    errors: list[GraphQLError] = []
    if shape.fields > limits.max_fields:
        errors.append(
            _error(
                f"The document selects more than {limits.max_fields} fields once its "
                "fragments are expanded: select less, or spread fragments fewer times",
                "QUERY_TOO_COMPLEX",
                maximumFields=limits.max_fields,
            )
        )
    if shape.nesting > limits.max_nesting:
        errors.append(
            _error(
                f"Selection sets nest {shape.nesting} deep (through fragments); "
                f"the maximum is {limits.max_nesting}",
                "QUERY_TOO_DEEP",
                nesting=shape.nesting,
                maximumNesting=limits.max_nesting,
            )
        )
        return errors, None  # the walkers below recurse as deep as the document nests
    if shape.depth > limits.max_depth:
        errors.append(
            _error(
                f"Query depth {shape.depth} exceeds the maximum of {limits.max_depth}",
                "QUERY_TOO_DEEP",
                depth=shape.depth,
                maximumDepth=limits.max_depth,
            )
        )
    if shape.aliases > limits.max_aliases:
        errors.append(
            _error(
                f"More than {limits.max_aliases} aliases found "
                f"(fragments expanded): allowed {limits.max_aliases}",
                "TOO_MANY_ALIASES",
                maximumAliases=limits.max_aliases,
            )
        )
    if variables is None:
        return errors, None
    key = (schema, operation_name, limits.list_size)
    cost = None if known_costs is None else known_costs.get(key)
    if cost is None:
        cost, read_variables = priced_operation(
            schema, document, operation_name, variables, list_size=limits.list_size
        )
        if known_costs is not None and not read_variables and len(known_costs) < MAX_KNOWN_COSTS:
            known_costs[key] = cost
    if cost > limits.max_cost:
        errors.append(
            _error(
                f"Query cost {cost} exceeds the maximum of {limits.max_cost}: "
                "ask for smaller pages or fewer nested lists",
                "QUERY_TOO_COMPLEX",
                cost=cost,
                maximumCost=limits.max_cost,
            )
        )
    return errors, cost


_RULE_SETS: dict[tuple[tuple[Any, ...], bool], tuple[Any, ...]] = {}
_MAX_RULE_SETS = 64  # a schema's requests use a handful (the rules are classes, not objects)


def validation_rules(rules: tuple[Any, ...], introspection: bool) -> tuple[Any, ...]:
    """graphql-core's rules with the overlapping-fields check budgeted (and no introspection).

    The same tuple object for the same rules: the document cache compares a request's
    rules with those a document was validated under, by identity first."""
    key = (rules, introspection)
    found = _RULE_SETS.get(key)
    if found is None:
        replaced = tuple(
            BudgetedOverlappingFields if rule is OverlappingFieldsCanBeMergedRule else rule
            for rule in rules
        )
        found = replaced if introspection else (*replaced, NoIntrospection)
        if len(_RULE_SETS) >= _MAX_RULE_SETS:
            _RULE_SETS.clear()
        _RULE_SETS[key] = found
    return found


def _error(message: str, code: str, **extensions: object) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code, **extensions})


__all__ = [
    "OVERLAP_BUDGET",
    "DocumentLimits",
    "ExtensionFactory",
    "QueryLimits",
    "limit_extensions",
    "operation_cost",
    "refusals",
    "validation_rules",
]
