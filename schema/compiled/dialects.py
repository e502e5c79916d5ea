"""The SQL each database needs to write a field's JSON exactly as the standard path does.

PostgreSQL builds JSON with ``json_build_object``/``json_agg`` (``json``, not
``jsonb``: key order is kept) and stores decimals as ``NUMERIC`` and times as
``timestamptz``. SQLite builds it with ``json_object``/``json_group_array`` and
stores decimals as canonical text and times as fixed-width UTC text
(``storage.types``). Decimals are written as text on both, never as JSON
numbers, so no value passes through a float.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

# At most this many keys in one JSON object: PostgreSQL functions take 100 arguments.
MAX_OBJECT_KEYS = 50
_ZEROS = "0" * 40


class Dialect:
    """Parameters are SQL expressions; a *value* is ``(expression, is_json)``, where
    ``is_json`` marks text that is already JSON (a nested object, a SQLite boolean)."""

    name = "abstract"

    def json_object(self, pairs: Sequence[tuple[str, tuple[str, bool]]]) -> str:
        raise NotImplementedError

    def json_array(self, element: str, source: str, order_by: str, limit: str = "") -> str:
        """A statement: the JSON array of ``element`` over the rows of the statement
        ``source`` (which selects the ``order_by`` column), in that order, the first
        ``limit`` of them if given; ``[]`` for none."""
        raise NotImplementedError

    def boolean(self, expression: str) -> tuple[str, bool]:
        raise NotImplementedError

    def identifier_text(self, expression: str) -> str:
        raise NotImplementedError

    def time_text(self, expression: str) -> str:
        raise NotImplementedError

    def amount_text(self, value: str, step: str) -> str:
        raise NotImplementedError

    def result_text(self, expression: str) -> str:
        """The statement's one column: the root field's JSON as text."""
        raise NotImplementedError

    def exact_text(self, expression: str) -> str:
        """A column's value as text, decimals exactly as stored."""
        raise NotImplementedError

    def decimal(self, value: Decimal) -> str:
        """A decimal constant, stored the way the database stores decimal columns."""
        raise NotImplementedError

    def nonzero(self, expression: str) -> str:
        """Is the stored decimal not zero (compared exactly, never as a float)?"""
        raise NotImplementedError


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class SQLite(Dialect):
    name = "sqlite"

    def json_object(self, pairs: Sequence[tuple[str, tuple[str, bool]]]) -> str:
        # JSON text that crossed a subquery or a column has lost SQLite's JSON subtype:
        # json() restores it (and keeps NULL a JSON null).
        return (
            "json_object("
            + ", ".join(
                f"{_literal(key)}, {f'json({value})' if is_json else value}"
                for key, (value, is_json) in pairs
            )
            + ")"
        )

    def json_array(self, element: str, source: str, order_by: str, limit: str = "") -> str:
        # The rows reach the aggregate in the subquery's order.
        cut = f" LIMIT {limit}" if limit else ""
        return f"SELECT json_group_array({element}) FROM ({source} ORDER BY {order_by}{cut})"

    def boolean(self, expression: str) -> tuple[str, bool]:
        return f"CASE WHEN {expression} THEN 'true' ELSE 'false' END", True

    def identifier_text(self, expression: str) -> str:
        return f"CAST({expression} AS TEXT)"

    def time_text(self, expression: str) -> str:
        # Stored as 2026-03-02T01:30:00.123456Z; isoformat() leaves out zero microseconds.
        e = expression
        return (
            f"CASE WHEN {e} IS NULL THEN NULL ELSE substr({e}, 1, 19) || "
            f"CASE WHEN substr({e}, 21, 6) = '000000' THEN '' ELSE substr({e}, 20, 7) END "
            f"|| '+00:00' END"
        )

    def amount_text(self, value: str, step: str) -> str:
        # at_scale on canonical decimal text: strip trailing zeros, then pad to the
        # step's decimals unless the value has more.
        stripped = _strip(value)
        wanted = _decimals(_strip(step))
        have = _decimals(stripped)
        return (
            f"CASE WHEN {value} IS NULL THEN NULL "
            f"WHEN {have} > {wanted} THEN {stripped} "
            f"ELSE {stripped} || CASE WHEN {have} = 0 AND {wanted} > 0 THEN '.' ELSE '' END "
            f"|| substr('{_ZEROS}', 1, {wanted} - {have}) END"
        )

    def result_text(self, expression: str) -> str:
        return expression

    def exact_text(self, expression: str) -> str:
        return f"CAST({expression} AS TEXT)"

    def decimal(self, value: Decimal) -> str:
        return _literal(format(value, "f"))  # as ExactDecimal writes it

    def nonzero(self, expression: str) -> str:
        # Decimal text is zero when nothing but signs, zeros and the point is left.
        return f"ltrim(replace(replace({expression}, '-', ''), '.', ''), '0') <> ''"


def _strip(text: str) -> str:
    return f"(CASE WHEN instr({text}, '.') > 0 THEN rtrim(rtrim({text}, '0'), '.') ELSE {text} END)"


def _decimals(text: str) -> str:
    return f"(CASE WHEN instr({text}, '.') > 0 THEN length({text}) - instr({text}, '.') ELSE 0 END)"


class PostgreSQL(Dialect):
    name = "postgresql"

    def json_object(self, pairs: Sequence[tuple[str, tuple[str, bool]]]) -> str:
        return (
            "json_build_object("
            + ", ".join(f"{_literal(key)}, {value}" for key, (value, _) in pairs)
            + ")"
        )

    def json_array(self, element: str, source: str, order_by: str, limit: str = "") -> str:
        rows = f"{source} ORDER BY {order_by} LIMIT {limit}" if limit else source
        return (
            f"SELECT COALESCE(json_agg({element} ORDER BY {order_by}), '[]'::json) "
            f"FROM ({rows}) AS _rows"
        )

    def boolean(self, expression: str) -> tuple[str, bool]:
        return f"({expression})", False

    def identifier_text(self, expression: str) -> str:
        return f"CAST({expression} AS TEXT)"

    def time_text(self, expression: str) -> str:
        utc = f"({expression} AT TIME ZONE 'UTC')"
        return (
            f"CASE WHEN {expression} IS NULL THEN NULL ELSE "
            f"to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || "
            f"CASE WHEN to_char({utc}, 'US') = '000000' THEN '' ELSE to_char({utc}, '.US') END "
            f"|| '+00:00' END"
        )

    def amount_text(self, value: str, step: str) -> str:
        wanted = f"scale(trim_scale({step}))"
        return (
            f"CASE WHEN {value} IS NULL THEN NULL "
            f"WHEN scale(trim_scale({value})) > {wanted} THEN CAST(trim_scale({value}) AS TEXT) "
            f"ELSE CAST(round({value}, {wanted}) AS TEXT) END"
        )

    def result_text(self, expression: str) -> str:
        return f"CAST({expression} AS TEXT)"

    def exact_text(self, expression: str) -> str:
        return f"CAST({expression} AS TEXT)"

    def decimal(self, value: Decimal) -> str:
        return f"CAST({_literal(format(value, 'f'))} AS NUMERIC)"

    def nonzero(self, expression: str) -> str:
        return f"{expression} <> 0"


def dialect_named(name: str) -> Dialect | None:
    if name == "sqlite":
        return SQLite()
    if name == "postgresql":
        return PostgreSQL()
    return None
