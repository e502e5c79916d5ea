"""An in-process catalogue of tradable instruments.

Tick validation runs on every tick, so symbol metadata (tick and lot size) is
kept in memory and reloaded from the database on a miss, instead of one query
per tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from storage import models
from storage.engine import SessionFactory
from storage.repositories import symbols as symbol_repo


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    code: str
    exchange: str
    currency: str
    tick_size: Decimal
    lot_size: Decimal
    tradable: bool
    session_close_utc_minute: int

    @classmethod
    def from_row(cls, row: models.Symbol) -> SymbolSpec:
        return cls(
            code=row.code,
            exchange=row.exchange,
            currency=row.currency,
            tick_size=row.tick_size,
            lot_size=row.lot_size,
            tradable=row.tradable,
            session_close_utc_minute=row.session_close_utc_minute,
        )


class SymbolCatalog:
    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions
        self._specs: dict[str, SymbolSpec] = {}

    async def load(self) -> None:
        async with self._sessions() as session:
            rows = await symbol_repo.search_symbols(
                session, search=None, exchange=None, after_code=None, limit=1_000_000
            )
        self._specs = {row.code: SymbolSpec.from_row(row) for row in rows}

    async def get_many(self, codes: list[str]) -> dict[str, SymbolSpec]:
        missing = [code for code in codes if code not in self._specs]
        if missing:
            async with self._sessions() as session:
                for row in await symbol_repo.symbols_by_codes(session, missing):
                    self._specs[row.code] = SymbolSpec.from_row(row)
        return {code: self._specs[code] for code in codes if code in self._specs}

    async def currency_of(self, code: str) -> str:
        spec = (await self.get_many([code])).get(code)
        if spec is None:
            raise KeyError(code)
        return spec.currency

    def cached(self, code: str) -> SymbolSpec | None:
        """The spec if already loaded (every symbol is, from start-up on), without a query."""
        return self._specs.get(code)

    def all(self) -> list[SymbolSpec]:
        return list(self._specs.values())


def is_multiple_of(value: Decimal, step: Decimal) -> bool:
    """Exact check that ``value`` sits on the ``step`` grid (tick or lot size).

    Absurd magnitudes (``1e999999``) cannot be divided exactly in the decimal
    context and count as off-grid rather than crashing the request.
    """
    if step <= 0 or not value.is_finite():
        return False
    try:
        return (value % step) == 0
    except InvalidOperation:
        return False


def quantize(value: Decimal, step: Decimal) -> Decimal:
    """Round to the nearest multiple of ``step`` (never below one step)."""
    steps = (value / step).to_integral_value(rounding=ROUND_HALF_UP)
    return max(steps, Decimal(1)) * step
