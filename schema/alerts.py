"""Alerts: the alert and firing types, the createAlert input and the payloads (the fields
themselves are declared by ``schema.query.Query``, ``schema.mutation.Mutation`` and
``schema.subscription.Subscription``)."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from decimal import Decimal

import strawberry

from graphql_api.alerts import conditions as domain
from graphql_api.alerts.service import AlertOutcome
from resolvers.amounts import Amounts
from resolvers.context import Info
from schema.common import UserError, user_errors
from schema.enums import AlertIndicator, AlertKind, AlertMode, AlertStatus, KlineInterval
from schema.market import Symbol, symbol_of
from storage import models
from storage import timeseries as ts


@strawberry.type(description="One of your alerts: a condition on a symbol's price or bars.")
class Alert:
    id: strawberry.ID = strawberry.field(description="Alert id.")
    kind: AlertKind = strawberry.field(description="What it watches.")
    mode: AlertMode = strawberry.field(description="ONCE or REARM.")
    status: AlertStatus = strawberry.field(description="ACTIVE, PAUSED, FIRED or EXPIRED.")
    level: Decimal | None = strawberry.field(
        description="Price level (price crosses) or indicator level (indicator crosses)."
    )
    percent: Decimal | None = strawberry.field(description="Move in percent (move kinds).")
    window_seconds: int | None = strawberry.field(description="Move window (move kinds).")
    interval: KlineInterval | None = strawberry.field(description="Bar width (indicator kinds).")
    indicator: AlertIndicator | None = strawberry.field(description="Indicator (indicator kinds).")
    period: int | None = strawberry.field(description="Indicator period (indicator kinds).")
    note: str | None = strawberry.field(description="Your note, repeated in each firing.")
    expires_at: datetime | None = strawberry.field(description="When it stops; null: never.")
    fire_count: int = strawberry.field(description="How many times it fired.")
    last_fired_at: datetime | None = strawberry.field(
        description="Trigger time of its latest firing."
    )
    created_at: datetime = strawberry.field(description="Creation time.")
    updated_at: datetime = strawberry.field(description="Last change of its status by you.")
    symbol_code: strawberry.Private[str]

    @classmethod
    def from_row(cls, row: models.Alert, scale: Amounts) -> Alert:
        kind = domain.AlertKind(row.kind)
        level = row.level
        if level is not None and kind.is_price_cross:
            level = scale.price(level, row.symbol_code)
        return cls(
            id=strawberry.ID(str(row.id)),
            kind=kind,
            mode=domain.AlertMode(row.mode),
            status=domain.AlertStatus(row.status),
            level=level,
            percent=row.percent,
            window_seconds=row.window_seconds,
            interval=ts.KlineInterval(row.interval) if row.interval else None,
            indicator=domain.AlertIndicator(row.indicator) if row.indicator else None,
            period=row.period,
            note=row.note,
            expires_at=row.expires_at,
            fire_count=row.fire_count,
            last_fired_at=row.last_fired_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
            symbol_code=row.symbol_code,
        )

    @strawberry.field(description="The instrument it watches.", graphql_type=Symbol)
    def symbol(self, info: Info) -> Symbol | Awaitable[Symbol]:
        return symbol_of(info, self.symbol_code)


@strawberry.type(description="One time an alert's condition was met.")
class AlertFiring:
    id: strawberry.ID = strawberry.field(description="Firing id.")
    alert_id: strawberry.ID = strawberry.field(description="The alert that fired.")
    kind: AlertKind = strawberry.field(description="The alert's kind.")
    price: Decimal = strawberry.field(
        description="Last price of the tick that met it (a bar's close, for indicators)."
    )
    value: Decimal | None = strawberry.field(
        description="The indicator's value (indicator kinds) or the move in percent (move kinds)."
    )
    message: str = strawberry.field(
        description='What happened, e.g. "BTCUSDT crossed above 100000 (last 100000.5, ...)".'
    )
    triggered_at: datetime = strawberry.field(
        description="Time of the tick that met it (start of the bar, for indicators)."
    )
    created_at: datetime = strawberry.field(description="When it was stored.")
    symbol_code: strawberry.Private[str]

    @classmethod
    def from_row(cls, row: models.AlertFiring, scale: Amounts) -> AlertFiring:
        return cls(
            id=strawberry.ID(str(row.id)),
            alert_id=strawberry.ID(str(row.alert_id)),
            kind=domain.AlertKind(row.kind),
            price=scale.price(row.price, row.symbol_code),
            value=row.value,
            message=row.message,
            triggered_at=row.triggered_at,
            created_at=row.created_at,
            symbol_code=row.symbol_code,
        )

    @strawberry.field(description="The instrument.", graphql_type=Symbol)
    def symbol(self, info: Info) -> Symbol | Awaitable[Symbol]:
        return symbol_of(info, self.symbol_code)


@strawberry.input(
    description=(
        "A new alert. Give the inputs its kind takes and no others: `level` for price "
        "crosses; `percent` and `windowSeconds` for moves; `indicator`, `period`, "
        "`interval` and `level` for indicator crosses."
    )
)
class CreateAlertInput:
    symbol: str = strawberry.field(description="Symbol code (any case).")
    kind: AlertKind = strawberry.field(description="What to watch.")
    mode: AlertMode = strawberry.field(
        default=domain.AlertMode.ONCE, description="ONCE (default) or REARM."
    )
    level: Decimal | None = strawberry.field(default=None, description="Price or indicator level.")
    percent: Decimal | None = strawberry.field(
        default=None, description="Move in percent, more than 0 (at most 1000)."
    )
    window_seconds: int | None = strawberry.field(
        default=None,
        description=f"Move window in seconds, 1 to {domain.MAX_WINDOW_SECONDS}.",
    )
    interval: KlineInterval | None = strawberry.field(
        default=None, description="Bar width of an indicator alert (intraday)."
    )
    indicator: AlertIndicator | None = strawberry.field(default=None, description="RSI, SMA, EMA.")
    period: int | None = strawberry.field(
        default=None, description=f"Indicator period, 2 to {domain.MAX_PERIOD}."
    )
    expires_at: datetime | None = strawberry.field(
        default=None, description="When it stops (UTC offset required); never when omitted."
    )
    note: str | None = strawberry.field(
        default=None, description=f"Your note, at most {domain.MAX_NOTE_LENGTH} characters."
    )

    def to_draft(self) -> domain.AlertDraft:
        return domain.AlertDraft(
            symbol=self.symbol,
            kind=self.kind,
            mode=self.mode,
            level=self.level,
            percent=self.percent,
            window_seconds=self.window_seconds,
            interval=self.interval,
            indicator=self.indicator,
            period=self.period,
            expires_at=self.expires_at,
            note=self.note,
        )


@strawberry.type(description="Result of an alert change.")
class AlertPayload:
    alert: Alert | None = strawberry.field(
        description="The alert after the change; null on errors (then nothing changed)."
    )
    user_errors: list[UserError] = strawberry.field(description="Problems with the input.")

    @classmethod
    def from_outcome(cls, outcome: AlertOutcome, scale: Amounts) -> AlertPayload:
        alert = Alert.from_row(outcome.alert, scale) if outcome.alert is not None else None
        return cls(alert=alert, user_errors=user_errors(outcome.errors))


@strawberry.type(description="Result of deleteAlert.")
class DeleteAlertPayload:
    deleted_alert_id: strawberry.ID | None = strawberry.field(
        description="Id of the deleted alert; null on errors."
    )
    user_errors: list[UserError] = strawberry.field(description="Why it was not deleted.")

    @classmethod
    def from_outcome(cls, outcome: AlertOutcome) -> DeleteAlertPayload:
        deleted = (
            strawberry.ID(str(outcome.alert.id))
            if outcome.alert is not None and not outcome.errors
            else None
        )
        return cls(deleted_alert_id=deleted, user_errors=user_errors(outcome.errors))
