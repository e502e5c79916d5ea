"""From a root field's selection to one SQL statement that returns the field's JSON.

Fields are collected by graphql-core's own ``collect_subfields`` (so fragments,
``@include``/``@skip``, aliases and field merging mean exactly what they mean
to the standard path), in selection order, which becomes the JSON key order.
Each field must be declared on its type's ``sql_reads``
(:mod:`schema.compiled.declarations`); anything else raises
:class:`NotCompilableError` and the root field takes the standard path.
A field computed in Python becomes a placeholder object the runner fills in
(:data:`COMPUTED`); a :class:`RootRows` field is planned as a projection of
the rows Python writes (:class:`RowsPlan`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    GraphQLEnumType,
    GraphQLField,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    get_named_type,
)
from graphql.execution.collect_fields import FieldDetails, FragmentDetails, collect_subfields
from graphql.execution.values import VariableValues, get_argument_values

from graphql_api.trading.accounts import currency_units
from resolvers.pagination import encode_cursor
from schema.compiled.declarations import (
    Amount,
    Cash,
    Column,
    Computed,
    Condition,
    Embedded,
    Kind,
    NestedConnection,
    ObjectReads,
    RootByKey,
    RootCaller,
    RootConnection,
    RootObject,
    RootRows,
    SameRow,
    ToMany,
    ToOne,
)
from schema.compiled.dialects import MAX_OBJECT_KEYS, Dialect


class NotCompilableError(Exception):
    """The selection uses something the compiled path does not declare; ``str()`` says what."""


class ArgumentsRefusedError(NotCompilableError):
    """A nested connection's arguments, as given in this request, are refused by its
    resolver's checks: this request takes the standard path, the plan is not kept."""


# Applied to the field's decoded JSON: what SQL leaves to Python (cursors).
Finish = Callable[[Any], Any]

# The key of a computed field's placeholder object (``{COMPUTED: index, "i": inputs}``):
# a GraphQL response key is a name (letters, digits, ``_``), so no object of the
# answer's own has a key with a ``$``.
COMPUTED = "$computed"


@dataclass(frozen=True, slots=True)
class Selection:
    """Where the planner reads the operation from (one request's execution)."""

    schema: GraphQLSchema
    fragments: dict[str, FragmentDetails]
    variable_values: VariableValues
    operation: OperationDefinitionNode


@dataclass(frozen=True, slots=True)
class ArgumentSite:
    """A nested field's argument the statement binds per request (``Strategy.orders``'s
    ``first``): read from ``node`` as graphql-core reads it, checked by ``read``."""

    parameter: str
    field_def: GraphQLField
    node: FieldNode
    read: ToMany


@dataclass(frozen=True, slots=True)
class ConnectionSite:
    """A nested connection (``me { account { trades } }``): its arguments are read and
    checked per request like a root connection's; ``shape`` is what the statement's
    text assumed of them (the runner plans again when a request differs)."""

    field_def: GraphQLField
    node: FieldNode
    read: NestedConnection
    shape: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class RowsPlan:
    """A :class:`RootRows` field's selection: (JSON key, field name or None for
    ``__typename``) in graphql-core's order, and the item type's name."""

    typename: str
    keys: tuple[tuple[str, str | None], ...]

    def project(self, rows: Sequence[Mapping[str, Any]]) -> Sequence[Mapping[str, Any]]:
        keys, typename = self.keys, self.typename
        if (
            rows
            and all(key == name for key, name in keys)
            and list(rows[0]) == [key for key, _ in keys]
        ):
            return rows  # every field, unaliased, in the rows' own order: as they are
        if all(name is not None for _, name in keys):
            return [{key: row[name] for key, name in keys} for row in rows]  # type: ignore[index]
        return [
            {key: row[name] if name is not None else typename for key, name in keys} for row in rows
        ]


@dataclass(frozen=True, slots=True)
class RootPlan:
    """One statement (with ``:name`` parameters), the nested arguments it binds, and
    what Python finishes on its JSON."""

    sql: str
    finish: Finish | None
    sites: tuple[ArgumentSite, ...] = ()
    connection: ConnectionSite | None = None
    computed: tuple[Computed, ...] = ()  # by the index their placeholders carry


def sql_reads_of(object_type: GraphQLObjectType) -> ObjectReads | None:
    """The ``sql_reads`` declared on the Strawberry class behind ``object_type``."""
    definition = (object_type.extensions or {}).get("strawberry-definition")
    origin = getattr(definition, "origin", None)
    reads = getattr(origin, "sql_reads", None)
    return reads if isinstance(reads, ObjectReads) else None


Value = tuple[str, bool]  # (SQL expression, is it JSON text already)


class _Row:
    """The inner SELECT over one row: every value is computed once, as a named column,
    so the JSON object around it nests no deeper than the selection does (SQLite's
    parser has a fixed stack)."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.columns: list[str] = []
        self.joins: list[str] = []

    def add(self, expression: str, is_json: bool) -> Value:
        name = f"_{self.alias}_{len(self.columns)}"
        self.columns.append(f"{expression} AS {name}")
        return name, is_json

    def join(self, clause: str) -> None:
        if clause not in self.joins:
            self.joins.append(clause)

    def select(self, source: str, where: str = "") -> str:
        columns = self.columns or ["1 AS _nothing"]  # only __typename was selected
        return (
            f"SELECT {', '.join(columns)} FROM {source} {self.alias} "
            f"{' '.join(self.joins)}{f' WHERE {where}' if where else ''}"
        )


class Planner:
    """Plans one root field. ``dialect``: the database's SQL; table aliases are numbered."""

    def __init__(self, selection: Selection, dialect: Dialect) -> None:
        self.selection = selection
        self.dialect = dialect
        self._aliases = 0
        self._sites: list[ArgumentSite] = []
        self._connection: ConnectionSite | None = None
        self._with = ""  # the nested connection's CTEs
        self._finishes: list[tuple[tuple[str, ...], Finish]] = []
        self._computed: list[Computed] = []

    # -- roots ---------------------------------------------------------------------------

    def connection(
        self,
        root: RootConnection,
        field_def: GraphQLField,
        details: list[FieldDetails],
        conditions: Sequence[Condition],
        has_after: bool,
    ) -> RootPlan:
        body, finish = self._connection_object(root, field_def, details, conditions, has_after)
        sql = f"{self._with}SELECT {self.dialect.result_text(body)}"
        return RootPlan(sql, finish, tuple(self._sites), None, tuple(self._computed))

    def _connection_object(
        self,
        root: RootConnection,
        field_def: GraphQLField,
        details: list[FieldDetails],
        conditions: Sequence[Condition],
        has_after: bool,
    ) -> tuple[str, Finish | None]:
        """The connection's JSON object over the ``_page`` and ``_shown`` CTEs, which it
        leaves in ``self._with``, and what Python finishes on it (cursors)."""
        connection_type = _object_type(field_def)
        where = self._where(conditions, root.owner)
        direction, reverse = ("DESC", "ASC") if root.descending else ("ASC", "DESC")
        if has_after:
            where.append(f"{root.key} {'<' if root.descending else '>'} :_after")
        pairs: list[tuple[str, Value]] = []
        edge_cursors: list[tuple[str, list[str]]] = []
        end_cursors: list[tuple[str, list[str]]] = []
        for key, field_details in self._fields(connection_type, details):
            name = field_details[0].node.name.value
            if name == "__typename":
                pairs.append((key, (_literal(connection_type.name), False)))
            elif name == "edges":
                edge_type = _object_type(connection_type.fields[name])
                statement, cursor_keys = self._edges(root, edge_type, field_details, direction)
                pairs.append((key, (f"({statement})", True)))
                edge_cursors.append((key, cursor_keys))
            elif name == "pageInfo":
                info_type = _object_type(connection_type.fields[name])
                value, cursor_keys = self._page_info(root, info_type, field_details, reverse)
                pairs.append((key, value))
                end_cursors.append((key, cursor_keys))
            else:
                raise NotCompilableError(f"{connection_type.name}.{name}")
        self._with = (
            f"WITH _page AS (SELECT * FROM {root.table} WHERE {' AND '.join(where) or '1 = 1'} "
            f"ORDER BY {root.key} {direction} LIMIT :_limit), "
            f"_shown AS (SELECT * FROM _page ORDER BY {root.key} {direction} LIMIT :_first) "
        )
        return self._object(pairs), _cursor_finish(root.cursor_kind, edge_cursors, end_cursors)

    def by_key(
        self,
        root: RootByKey | RootCaller,
        field_def: GraphQLField,
        details: list[FieldDetails],
    ) -> RootPlan:
        """One row (``RootCaller``: the caller's own, which may hold a nested connection)."""
        object_type = _object_type(field_def)
        reads = self._reads(object_type, root.table)
        row = _Row(self._alias())
        path = () if isinstance(root, RootCaller) else None
        pairs = self._node(object_type, reads, details, row, path)
        where = [f"{row.alias}.{root.column} = :_key"]
        if root.owner is not None:
            where.append(f"{row.alias}.{root.owner} = :_owner")
        inner = row.select(root.table, " AND ".join(where))
        body = self.dialect.result_text(self._object(pairs))
        sql = f"{self._with}SELECT {body} FROM ({inner}) AS _one"
        return RootPlan(
            sql,
            _at_paths(self._finishes),
            tuple(self._sites),
            self._connection,
            tuple(self._computed),
        )

    def rows(
        self, root: RootRows | RootObject, field_def: GraphQLField, details: list[FieldDetails]
    ) -> RowsPlan:
        """Which of the rows' fields go under which keys: plain fields of the item type
        (the object's own type for a :class:`RootObject`) that ``root`` declares, or
        ``__typename``."""
        item_type = _object_type(field_def)
        keys: list[tuple[str, str | None]] = []
        for key, field_details in self._fields(item_type, details):
            name = field_details[0].node.name.value
            if name == "__typename":
                keys.append((key, None))
                continue
            item_field = item_type.fields.get(name)
            if item_field is None or name not in root.fields:
                raise NotCompilableError(f"{item_type.name}.{name}")
            _check_plain(item_type, name, item_field, field_details)
            keys.append((key, name))
        return RowsPlan(item_type.name, tuple(keys))

    # -- connection parts ----------------------------------------------------------------

    def _edges(
        self,
        root: RootConnection,
        edge_type: GraphQLObjectType,
        details: list[FieldDetails],
        direction: str,
    ) -> tuple[str, list[str]]:
        row = _Row(self._alias())
        pairs: list[tuple[str, Value]] = []
        cursor_keys: list[str] = []
        for key, field_details in self._fields(edge_type, details):
            name = field_details[0].node.name.value
            if name == "__typename":
                pairs.append((key, (_literal(edge_type.name), False)))
            elif name == "cursor":
                cursor = self.dialect.identifier_text(f"{row.alias}.{root.key}")
                pairs.append((key, row.add(cursor, False)))
                cursor_keys.append(key)
            elif name == "node":
                node_type = _object_type(edge_type.fields[name])
                reads = self._reads(node_type, root.table)
                node_pairs = self._node(node_type, reads, field_details, row)
                pairs.append((key, (self._object(node_pairs), True)))
            else:
                raise NotCompilableError(f"{edge_type.name}.{name}")
        order = f"_{row.alias}_key"
        row.columns.append(f"{row.alias}.{root.key} AS {order}")
        statement = self.dialect.json_array(
            self._object(pairs), row.select("_shown"), f"{order} {direction}"
        )
        return statement, cursor_keys

    def _page_info(
        self,
        root: RootConnection,
        info_type: GraphQLObjectType,
        details: list[FieldDetails],
        reverse: str,
    ) -> tuple[Value, list[str]]:
        pairs: list[tuple[str, Value]] = []
        cursor_keys: list[str] = []
        for key, field_details in self._fields(info_type, details):
            name = field_details[0].node.name.value
            if name == "__typename":
                pairs.append((key, (_literal(info_type.name), False)))
            elif name == "hasNextPage":
                pairs.append((key, self.dialect.boolean("(SELECT count(*) FROM _page) > :_first")))
            elif name == "endCursor":
                # Qualified, and named apart: PostgreSQL would order by the output column
                # (the key as text) if it were named like the key.
                last = (
                    f"SELECT {self.dialect.identifier_text(f'_last.{root.key}')} AS _end "
                    f"FROM _shown AS _last ORDER BY _last.{root.key} {reverse} LIMIT 1"
                )
                pairs.append((key, (f"({last})", False)))
                cursor_keys.append(key)
            else:
                raise NotCompilableError(f"{info_type.name}.{name}")
        return (self._object(pairs), True), cursor_keys

    # -- objects -------------------------------------------------------------------------

    def _node(
        self,
        object_type: GraphQLObjectType,
        reads: ObjectReads,
        details: list[FieldDetails],
        row: _Row,
        path: tuple[str, ...] | None = None,
    ) -> list[tuple[str, Value]]:
        """The JSON pairs of one row's object; their values become columns of ``row``.

        ``path``: the JSON keys from the root field's value to this object, when it is
        the caller's own row (only there may a nested connection be)."""
        dialect = self.dialect
        alias = row.alias
        pairs: list[tuple[str, Value]] = []
        for key, field_details in self._fields(object_type, details):
            name = field_details[0].node.name.value
            if name == "__typename":
                pairs.append((key, (_literal(object_type.name), False)))
                continue
            read = reads.fields.get(name)
            field_def = object_type.fields.get(name)
            if read is None or field_def is None:
                raise NotCompilableError(f"{object_type.name}.{name}")
            if isinstance(read, ToMany):
                pairs.append((key, row.add(*self._to_many(read, field_def, field_details, alias))))
                continue
            if isinstance(read, NestedConnection):
                if path is None:
                    raise NotCompilableError(f"{object_type.name}.{name} outside the caller's row")
                body = self._nested_connection(read, field_def, field_details, (*path, key))
                pairs.append((key, row.add(body, True)))
                continue
            _check_plain(object_type, name, field_def, field_details)
            if isinstance(read, Column):
                pairs.append((key, row.add(*self._column(read, field_def, alias))))
            elif isinstance(read, Amount):
                if read.step_via is None:
                    step = f"{alias}.{read.step}"
                else:
                    scale_alias = f"{alias}_s"
                    row.join(
                        f"JOIN symbols {scale_alias} "
                        f"ON {scale_alias}.code = {alias}.{read.step_via}"
                    )
                    step = f"{scale_alias}.{read.step}"
                amount = dialect.amount_text(f"{alias}.{read.column}", step)
                pairs.append((key, row.add(amount, False)))
            elif isinstance(read, Cash):
                if read.currency_via is None:
                    currency = f"{alias}.currency"
                else:
                    scale_alias = f"{alias}_s"
                    row.join(
                        f"JOIN symbols {scale_alias} "
                        f"ON {scale_alias}.code = {alias}.{read.currency_via}"
                    )
                    currency = f"{scale_alias}.currency"
                cash = dialect.amount_text(f"{alias}.{read.column}", self._unit(currency))
                pairs.append((key, row.add(cash, False)))
            elif isinstance(read, Computed):
                # A placeholder Python replaces after the statement (see COMPUTED).
                inputs = [
                    (input_name, (dialect.exact_text(f"{alias}.{column}"), False))
                    for input_name, column in read.inputs.items()
                ]
                marker = (_literal(str(len(self._computed))), False)
                self._computed.append(read)
                placeholder = self._object(
                    [(COMPUTED, marker), ("i", (self._object(inputs), True))]
                )
                pairs.append((key, row.add(placeholder, True)))
            elif isinstance(read, SameRow):
                same_type = _object_type(field_def)
                same = self._reads(same_type, reads.table)
                inner_path = (*path, key) if path is not None else None
                same_pairs = self._node(same_type, same, field_details, row, inner_path)
                pairs.append((key, (self._object(same_pairs), True)))
            elif isinstance(read, Embedded):
                embedded_type = _object_type(field_def)
                inner: list[tuple[str, Value]] = []
                for inner_key, inner_details in self._fields(embedded_type, field_details):
                    inner_name = inner_details[0].node.name.value
                    if inner_name == "__typename":
                        inner.append((inner_key, (_literal(embedded_type.name), False)))
                        continue
                    column = read.fields.get(inner_name)
                    inner_def = embedded_type.fields.get(inner_name)
                    if column is None or inner_def is None:
                        raise NotCompilableError(f"{embedded_type.name}.{inner_name}")
                    _check_plain(embedded_type, inner_name, inner_def, inner_details)
                    inner.append((inner_key, row.add(*self._column(column, inner_def, alias))))
                pairs.append((key, (self._object(inner), True)))
            elif isinstance(read, ToOne):
                target_type = _object_type(field_def)
                target = sql_reads_of(target_type)
                if target is None:
                    raise NotCompilableError(f"{target_type.name} declares no sql_reads")
                target_row = _Row(self._alias())
                target_pairs = self._node(target_type, target, field_details, target_row)
                inner_select = target_row.select(
                    target.table, f"{target_row.alias}.{read.remote} = {alias}.{read.local}"
                )
                subquery = f"(SELECT {self._object(target_pairs)} FROM ({inner_select}) AS _one)"
                pairs.append((key, row.add(subquery, True)))
            else:  # pragma: no cover - the union is closed
                raise NotCompilableError(f"{object_type.name}.{name}")
        return pairs

    def _to_many(
        self, read: ToMany, field_def: GraphQLField, details: list[FieldDetails], alias: str
    ) -> Value:
        """A correlated subquery: the JSON array of the related rows, newest first, at
        most the bound limit (the field's ``first``, checked per request)."""
        definition = (field_def.extensions or {}).get("strawberry-definition")
        if getattr(definition, "extensions", None):
            raise NotCompilableError(f"{field_def} has field extensions")
        target_type = _object_type(field_def)
        target = sql_reads_of(target_type)
        if target is None:
            raise NotCompilableError(f"{target_type.name} declares no sql_reads")
        limit = ""
        if read.limit is not None:
            limit = f":_a{len(self._sites)}"
            self._sites.append(ArgumentSite(limit[1:], field_def, details[0].node, read))
        elif field_def.args:
            raise NotCompilableError(f"{field_def} takes arguments no limit reads")
        target_row = _Row(self._alias())
        element = self._object(self._node(target_type, target, details, target_row))
        order = f"_{target_row.alias}_key"
        target_row.columns.append(f"{target_row.alias}.{read.key} AS {order}")
        where = f"{target_row.alias}.{read.remote} = {alias}.{read.local}"
        if read.nonzero is not None:
            where += f" AND {self.dialect.nonzero(f'{target_row.alias}.{read.nonzero}')}"
        source = target_row.select(target.table, where)
        direction = "DESC" if read.descending else "ASC"
        statement = self.dialect.json_array(element, source, f"{order} {direction}", limit)
        return f"({statement})", True

    def _nested_connection(
        self,
        read: NestedConnection,
        field_def: GraphQLField,
        details: list[FieldDetails],
        path: tuple[str, ...],
    ) -> str:
        """The connection's JSON over CTEs at the top of the statement (it is the caller's,
        so it correlates with nothing); its arguments are checked here as in a request."""
        definition = (field_def.extensions or {}).get("strawberry-definition")
        if getattr(definition, "extensions", None):
            raise NotCompilableError(f"{field_def} has field extensions")
        if self._connection is not None or self._with:
            raise NotCompilableError("a second connection in one statement")
        node = details[0].node
        try:
            arguments = get_argument_values(field_def, node, self.selection.variable_values)
            if undeclared(arguments, read.connection.arguments):
                raise NotCompilableError(f"{field_def}: an undeclared argument")
            conditions = list(read.connection.narrowing(arguments))
            page = read.connection.page(arguments, 1 << 30)
        except NotCompilableError:
            raise
        except Exception as refused:
            raise ArgumentsRefusedError(str(refused)) from refused
        has_after = page.after_key is not None
        shape = (conditions_shape(conditions), has_after)
        self._connection = ConnectionSite(field_def, node, read, shape)
        body, finish = self._connection_object(
            read.connection, field_def, details, conditions, has_after
        )
        if finish is not None:
            self._finishes.append((path, finish))
        return body

    def _unit(self, currency: str) -> str:
        """The minor unit of the currency ``currency`` names, from the Python table."""
        units, default = currency_units()
        cases = " ".join(
            f"WHEN {_literal(code)} THEN {self.dialect.decimal(unit)}"
            for code, unit in sorted(units.items())
        )
        return f"(CASE {currency} {cases} ELSE {self.dialect.decimal(default)} END)"

    def _column(self, read: Column, field_def: GraphQLField, alias: str) -> Value:
        dialect = self.dialect
        column = f"{alias}.{read.column}"
        if read.kind is Kind.ID:
            return dialect.identifier_text(column), False
        if read.kind is Kind.BOOL:
            return dialect.boolean(column)
        if read.kind is Kind.TIME:
            return dialect.time_text(column), False
        if read.kind is Kind.ENUM:
            enum_type = get_named_type(field_def.type)
            if not isinstance(enum_type, GraphQLEnumType):
                raise NotCompilableError(f"{field_def.type} is not an enum")
            return _enum_names(enum_type, column), False
        return column, False  # TEXT and INT are written as stored

    # -- helpers -------------------------------------------------------------------------

    def _fields(
        self, object_type: GraphQLObjectType, details: list[FieldDetails]
    ) -> list[tuple[str, list[FieldDetails]]]:
        selection = self.selection
        collected = collect_subfields(
            selection.schema,
            selection.fragments,
            selection.variable_values,
            selection.operation,
            object_type,
            details,
        )
        if collected.new_defer_usages or collected.forbidden_directive_instances:
            raise NotCompilableError("@defer")
        fields = list(collected.grouped_field_set.items())
        if len(fields) > MAX_OBJECT_KEYS:
            raise NotCompilableError(f"more than {MAX_OBJECT_KEYS} keys in one object")
        for _key, field_details in fields:
            for detail in field_details:
                if detail.defer_usage is not None or detail.fragment_variable_values is not None:
                    raise NotCompilableError("fragment arguments or @defer")
        return fields

    def _reads(self, object_type: GraphQLObjectType, table: str) -> ObjectReads:
        reads = sql_reads_of(object_type)
        if reads is None or reads.table != table:
            raise NotCompilableError(f"{object_type.name} declares no sql_reads on {table}")
        return reads

    def _where(self, conditions: Sequence[Condition], owner: str | None) -> list[str]:
        where: list[str] = []
        if owner is not None:
            where.append(f"{owner} = :_owner")
        for index, condition in enumerate(conditions):
            name = f"_c{index}"
            if condition.op == "in":
                names = ", ".join(f":{name}_{item}" for item in range(len(condition.value)))
                where.append(f"{condition.column} IN ({names})")
            elif condition.op in ("=", ">=", "<"):
                where.append(f"{condition.column} {condition.op} :{name}")
            else:
                raise NotCompilableError(f"operator {condition.op}")
        return where

    def _object(self, pairs: Sequence[tuple[str, Value]]) -> str:
        # No pairs is {}: what a selection whose every field was skipped gives.
        return self.dialect.json_object(pairs)

    def _alias(self) -> str:
        self._aliases += 1
        return f"t{self._aliases}"


def condition_parameters(
    conditions: Sequence[Condition], convert: Callable[[Any], Any]
) -> dict[str, Any]:
    """The bound values of :meth:`Planner._where`'s parameters."""
    parameters: dict[str, Any] = {}
    for index, condition in enumerate(conditions):
        if condition.op == "in":
            for item, value in enumerate(condition.value):
                parameters[f"_c{index}_{item}"] = convert(value)
        else:
            parameters[f"_c{index}"] = convert(condition.value)
    return parameters


def conditions_shape(conditions: Sequence[Condition]) -> tuple[tuple[str, str, int], ...]:
    """What of the conditions the statement's text depends on (not their values)."""
    return tuple((c.column, c.op, len(c.value) if c.op == "in" else 0) for c in conditions)


def undeclared(arguments: Mapping[str, Any], declared: frozenset[str]) -> bool:
    """Does an argument the declaration does not know have a value (given, or a non-null
    default)? One added later (``last``, an ordering) may change the rows: the standard
    path answers until it is declared. A null one filters nothing, by convention."""
    return any(value is not None for name, value in arguments.items() if name not in declared)


def _at_paths(finishes: Sequence[tuple[tuple[str, ...], Finish]]) -> Finish | None:
    """Each finish applied to the object at its path of keys (absent under a null)."""
    if not finishes:
        return None

    def finish(value: Any) -> Any:
        for path, apply in finishes:
            parent: Any = None
            target = value
            for key in path:
                parent, target = target, (target[key] if target is not None else None)
            if target is None:
                continue
            if parent is None:
                value = apply(target)
            else:
                parent[path[-1]] = apply(target)
        return value

    return finish


def _check_plain(
    parent: GraphQLObjectType, name: str, field_def: GraphQLField, details: list[FieldDetails]
) -> None:
    """Declared fields take no arguments and carry no field extensions (permissions)."""
    definition = (field_def.extensions or {}).get("strawberry-definition")
    if field_def.args or any(detail.node.arguments for detail in details):
        raise NotCompilableError(f"{parent.name}.{name} takes arguments")
    if getattr(definition, "extensions", None):
        raise NotCompilableError(f"{parent.name}.{name} has field extensions")


def _object_type(field_def: GraphQLField) -> GraphQLObjectType:
    named = get_named_type(field_def.type)
    if not isinstance(named, GraphQLObjectType):
        raise NotCompilableError(f"{named} is not an object type")
    return named


def _enum_names(enum_type: GraphQLEnumType, column: str) -> str:
    """The GraphQL name of a stored enum value (the value itself where they agree)."""
    names: Mapping[str, str] = {str(value.value): name for name, value in enum_type.values.items()}
    if all(value == name for value, name in names.items()):
        return column
    cases = " ".join(
        f"WHEN {_literal(value)} THEN {_literal(name)}" for value, name in names.items()
    )
    return f"CASE {column} {cases} END"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _cursor_finish(
    kind: str,
    edge_cursors: list[tuple[str, list[str]]],
    end_cursors: list[tuple[str, list[str]]],
) -> Finish | None:
    """Cursors are base64 of ``kind:key``: SQL returns the key, this encodes it."""
    if not any(keys for _, keys in edge_cursors) and not any(keys for _, keys in end_cursors):
        return None

    def finish(connection: Any) -> Any:
        for edges_key, cursor_keys in edge_cursors:
            for edge in connection[edges_key]:
                for cursor_key in cursor_keys:
                    edge[cursor_key] = encode_cursor(kind, edge[cursor_key])
        for info_key, cursor_keys in end_cursors:
            info = connection[info_key]
            for cursor_key in cursor_keys:
                if info[cursor_key] is not None:
                    info[cursor_key] = encode_cursor(kind, info[cursor_key])
        return connection

    return finish
