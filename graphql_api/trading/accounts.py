"""Paper-trading accounts: one cash balance per quote currency."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import models

# Minor units used to round cash amounts (commissions) per currency.
_CURRENCY_UNITS = {"CNY": Decimal("0.01"), "USD": Decimal("0.01"), "USDT": Decimal("0.00000001")}
_DEFAULT_UNIT = Decimal("0.00000001")


def currency_unit(currency: str) -> Decimal:
    return _CURRENCY_UNITS.get(currency, _DEFAULT_UNIT)


def currency_units() -> tuple[dict[str, Decimal], Decimal]:
    """The minor units by currency and the unit of any other currency (the compiled
    read path writes them into SQL, so both paths show cash alike)."""
    return dict(_CURRENCY_UNITS), _DEFAULT_UNIT


def round_cash(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(currency_unit(currency), rounding=ROUND_HALF_UP)


async def account_currencies(session: AsyncSession) -> list[str]:
    result = await session.scalars(select(models.Symbol.currency).distinct())
    return sorted(result)


StartCash = Decimal | Callable[[str], Decimal]
"""One amount for every currency, or the amount per currency (``Settings.start_cash``)."""


def start_cash_in(start_cash: StartCash, currency: str) -> Decimal:
    return start_cash(currency) if callable(start_cash) else start_cash


async def open_account(
    session: AsyncSession, user_id: int, currencies: Iterable[str], start_cash: StartCash
) -> None:
    """Give a new user their start cash in every quote currency (idempotent)."""
    now = datetime.now(UTC)
    for currency in currencies:
        if await session.get(models.CashBalance, (user_id, currency)) is None:
            session.add(
                models.CashBalance(
                    user_id=user_id,
                    currency=currency,
                    amount=start_cash_in(start_cash, currency),
                    updated_at=now,
                )
            )
