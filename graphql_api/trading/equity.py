"""What a paper account is worth, per currency, and its record over time.

Equity in a currency is its cash plus every position in a symbol quoted in that
currency, marked at the symbol's last trade price (at its cost basis while the
symbol has no tick yet: no price is no evidence of a gain or a loss). It is
exact Decimal arithmetic; nothing is rounded before it is shown.

An account's history is a series of snapshots: one at the end of every UTC day
for every account, taken by one process of the cluster (leader-elected, like
the matcher; a unique key makes a second attempt at the same day a no-op), and
intraday ones whenever the owner asks (``recordEquitySnapshot``).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from enum import Enum

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.market.symbols import SymbolCatalog
from storage import models
from storage.engine import SessionFactory
from storage.timeseries import TimeSeriesStore

log = structlog.get_logger(__name__)
_ZERO = Decimal(0)


class SnapshotKind(Enum):
    END_OF_DAY = "END_OF_DAY"
    INTRADAY = "INTRADAY"


@dataclass(frozen=True, slots=True)
class Valuation:
    user_id: int
    currency: str
    cash: Decimal
    positions_value: Decimal

    @property
    def equity(self) -> Decimal:
        return self.cash + self.positions_value


async def value_accounts(
    session: AsyncSession,
    catalog: SymbolCatalog,
    timeseries: TimeSeriesStore,
    user_ids: Sequence[int] | None = None,
) -> list[Valuation]:
    """Every (user, currency) the users hold cash in, valued now; all users if None."""
    balances = select(models.CashBalance)
    positions = select(models.Position)
    if user_ids is not None:
        balances = balances.where(models.CashBalance.user_id.in_(user_ids))
        positions = positions.where(models.Position.user_id.in_(user_ids))
    cash = {(row.user_id, row.currency): row.amount for row in await session.scalars(balances)}
    held = [row for row in await session.scalars(positions) if row.quantity != _ZERO]
    codes = sorted({row.symbol_code for row in held})
    specs = await catalog.get_many(codes)
    last = await timeseries.latest_ticks(codes) if codes else {}
    marked: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    for row in held:
        spec = specs.get(row.symbol_code)
        if spec is None:
            continue
        tick = last.get(row.symbol_code)
        value = row.quantity * tick.last if tick is not None else row.cost_basis
        marked[(row.user_id, spec.currency)] += value
    keys = sorted(set(cash) | set(marked))
    return [
        Valuation(
            user, currency, cash.get((user, currency), _ZERO), marked.get((user, currency), _ZERO)
        )
        for user, currency in keys
    ]


def end_of_day(moment: datetime) -> datetime:
    """The UTC midnight that ends ``moment``'s day (the time of its END_OF_DAY snapshot)."""
    day = moment.astimezone(UTC).date() + timedelta(days=1)
    return datetime.combine(day, time(0), tzinfo=UTC)


class EquitySnapshots:
    """Takes and keeps snapshots; one transaction per call."""

    def __init__(
        self, sessions: SessionFactory, catalog: SymbolCatalog, timeseries: TimeSeriesStore
    ) -> None:
        self._sessions = sessions
        self._catalog = catalog
        self._timeseries = timeseries

    async def record(
        self, kind: SnapshotKind, at: datetime, user_ids: Sequence[int] | None = None
    ) -> list[models.EquitySnapshot]:
        """Value the accounts now and store them as of ``at``. An END_OF_DAY snapshot
        already taken for ``at`` (by this or another process) is kept, not repeated."""
        async with self._sessions() as session:
            valued = await value_accounts(session, self._catalog, self._timeseries, user_ids)
            if kind is SnapshotKind.END_OF_DAY:
                taken = set(
                    await session.execute(
                        select(models.EquitySnapshot.user_id, models.EquitySnapshot.currency).where(
                            models.EquitySnapshot.kind == kind.value,
                            models.EquitySnapshot.taken_at == at,
                        )
                    )
                )
                valued = [v for v in valued if (v.user_id, v.currency) not in taken]
            rows = [
                models.EquitySnapshot(
                    user_id=v.user_id,
                    currency=v.currency,
                    kind=kind.value,
                    taken_at=at,
                    cash=v.cash,
                    positions_value=v.positions_value,
                    equity=v.equity,
                )
                for v in valued
            ]
            session.add_all(rows)
            try:
                await session.commit()
            except IntegrityError:
                # Another process took the same day's snapshot in between: theirs stands.
                await session.rollback()
                return []
        return rows

    async def run(self, *, clock: type[datetime] = datetime) -> None:
        """Leader work: the END_OF_DAY snapshot of every account at each UTC midnight
        (and, after a start, of the day that just ended if it is missing)."""
        while True:
            now = clock.now(UTC)
            last_midnight = end_of_day(now) - timedelta(days=1)
            recorded = await self.record(SnapshotKind.END_OF_DAY, last_midnight)
            if recorded:
                log.info("equity snapshots", at=last_midnight.isoformat(), accounts=len(recorded))
            wait = (end_of_day(now) - clock.now(UTC)).total_seconds()
            await asyncio.sleep(max(wait, 0.0) + 1.0)
