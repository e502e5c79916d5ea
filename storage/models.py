"""SQLAlchemy ORM rows. Import as a namespace (``from storage import models``)
so these never clash with the GraphQL types of the same name."""

from __future__ import annotations

import unicodedata
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, validates

from storage.types import ExactDecimal, UtcDateTime

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def username_key(username: str) -> str:
    """The form usernames are compared in: NFKC, then case folded.

    ``demo``, ``Demo`` and ``ｄｅｍｏ`` are one user; the name is shown as it was
    registered, and looked up (and kept unique) by this key.
    """
    return unicodedata.normalize("NFKC", username).casefold()


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    username_key: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    @validates("username")
    def _keep_key(self, _field: str, username: str) -> str:
        # Every way of naming a user sets the key with it, so lookups never miss.
        self.username_key = username_key(username)
        return username


class Symbol(Base):
    __tablename__ = "symbols"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    exchange: Mapped[str] = mapped_column(String(16), index=True)
    currency: Mapped[str] = mapped_column(String(8))
    tick_size: Mapped[Decimal] = mapped_column(ExactDecimal())
    lot_size: Mapped[Decimal] = mapped_column(ExactDecimal())
    tradable: Mapped[bool] = mapped_column(Boolean, default=True)
    # When it trades: {"timezone": IANA name, "windows": [{"days", "open", "close"}]}
    # (graphql_api.market.sessions.TradingSession.to_json), and what an order placed
    # outside those hours gets: REFUSE (rejected, MARKET_CLOSED) or REST (waits).
    trading_session: Mapped[dict[str, Any]] = mapped_column(JSON)
    off_session_orders: Mapped[str] = mapped_column(
        String(8), default="REFUSE", server_default="REFUSE"
    )


class SymbolAudit(Base):
    """One administrative change to a symbol: who, when, and the symbol before and after.

    ``actor_id`` is not a foreign key and the actor's name is copied: the record
    must outlive a removed user. ``before`` is null for a creation.
    """

    __tablename__ = "symbol_audit"
    __table_args__ = (Index("ix_symbol_audit_symbol_code_id", "symbol_code", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    symbol_code: Mapped[str] = mapped_column(ForeignKey("symbols.code"))
    action: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    actor_name: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict[str, Any]] = mapped_column(JSON)


class DailyBar(Base):
    __tablename__ = "daily_bars"

    symbol_code: Mapped[str] = mapped_column(ForeignKey("symbols.code"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    open: Mapped[Decimal] = mapped_column(ExactDecimal())
    high: Mapped[Decimal] = mapped_column(ExactDecimal())
    low: Mapped[Decimal] = mapped_column(ExactDecimal())
    close: Mapped[Decimal] = mapped_column(ExactDecimal())
    volume: Mapped[Decimal] = mapped_column(ExactDecimal())


class Strategy(Base):
    __tablename__ = "strategies"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    symbol_code: Mapped[str] = mapped_column(ForeignKey("symbols.code"))
    interval: Mapped[str] = mapped_column(String(8))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    auto_trade: Mapped[bool] = mapped_column(Boolean, default=False)
    # Start of the last closed bar the engine evaluated: after a restart, bars up
    # to here rebuild indicator state but never emit signals again.
    last_bar_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # Start of the first bar the engine fed the rule when the strategy went live:
    # a rebuild replays every stored bar from here to last_bar_at (up to a cap),
    # so indicators with memory (EMA, RSI, MACD) resume exactly. NULL until then.
    evaluated_from: Mapped[datetime | None] = mapped_column(UtcDateTime())
    status_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Signal(Base):
    __tablename__ = "signals"
    __table_args__ = (UniqueConstraint("strategy_id", "bar_time", name="uq_signals_strategy_bar"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    strategy_id: Mapped[int] = mapped_column(ForeignKey("strategies.id", ondelete="CASCADE"))
    symbol_code: Mapped[str] = mapped_column(ForeignKey("symbols.code"))
    side: Mapped[str] = mapped_column(String(4))
    price: Mapped[Decimal] = mapped_column(ExactDecimal())
    bar_time: Mapped[datetime] = mapped_column(UtcDateTime())
    reason: Mapped[str] = mapped_column(Text)
    order_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class EquitySnapshot(Base):
    """An account's worth in one currency at one moment (see ``graphql_api.trading.equity``).

    One END_OF_DAY row per (user, currency, day): the unique key makes a second
    process's attempt at the same midnight fail instead of doubling the point.
    """

    __tablename__ = "equity_snapshots"
    __table_args__ = (
        UniqueConstraint(
            "user_id", "currency", "kind", "taken_at", name="uq_equity_snapshots_point"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    currency: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(16))
    taken_at: Mapped[datetime] = mapped_column(UtcDateTime())
    cash: Mapped[Decimal] = mapped_column(ExactDecimal())
    positions_value: Mapped[Decimal] = mapped_column(ExactDecimal())
    equity: Mapped[Decimal] = mapped_column(ExactDecimal())


class AccountReset(Base):
    """A paper account started over: positions closed without a trade, cash back to
    its start. ``last_trade_id`` is the user's last fill before it, so a replay of
    the fills knows where the positions were forced flat."""

    __tablename__ = "account_resets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    reset_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_trade_id: Mapped[int] = mapped_column(BigInteger)


class SavedBacktest(Base):
    """A backtest run kept under a name: its inputs and its whole result, as JSON
    (see ``graphql_api.strategies.backtest.saved`` for the format)."""

    __tablename__ = "saved_backtests"
    __table_args__ = (Index("ix_saved_backtests_user_id_id", "user_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    symbol_code: Mapped[str] = mapped_column(String(32))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("user_id", "client_order_id", name="uq_orders_user_client_order_id"),
        Index("ix_orders_user_id_id", "user_id", "id"),
        Index("ix_orders_strategy_id", "strategy_id"),
        Index("ix_orders_status", "status"),
        # Open orders by user: the reservation sums (the reference the kept
        # reservations are tested against, and the account page) read only these.
        Index(
            "ix_orders_open_by_user",
            "user_id",
            "side",
            "symbol_code",
            postgresql_where=text("status IN ('NEW', 'PARTIALLY_FILLED')"),
            sqlite_where=text("status IN ('NEW', 'PARTIALLY_FILLED')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    client_order_id: Mapped[str | None] = mapped_column(String(64))
    symbol_code: Mapped[str] = mapped_column(ForeignKey("symbols.code"))
    strategy_id: Mapped[int | None] = mapped_column(
        ForeignKey("strategies.id", ondelete="SET NULL"), nullable=True
    )
    side: Mapped[str] = mapped_column(String(4))
    type: Mapped[str] = mapped_column(String(16))
    time_in_force: Mapped[str] = mapped_column(String(4))
    quantity: Mapped[Decimal] = mapped_column(ExactDecimal())
    limit_price: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    # STOP / STOP_LIMIT: the last price that triggers the order, and when a tick did
    # (from then on it acts as a MARKET / LIMIT order).
    stop_price: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    triggered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(20))
    filled_quantity: Mapped[Decimal] = mapped_column(ExactDecimal())
    average_fill_price: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    reject_reason: Mapped[str | None] = mapped_column(String(64))
    # Price at which cash is held back for an open BUY: the limit price, or for
    # a MARKET order the latest ask plus the configured buffer.
    reserve_price: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # Time priority: an order ranks by its id until an amendment sends it to the
    # back of its queue; then it ranks right after the newest order at that moment
    # (queue_anchor, that order's id), amendments at one anchor by queued_at.
    queue_anchor: Mapped[int | None] = mapped_column(BigId)
    queued_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # Bumped by every fill or status change: a matcher that lost its lock
    # cannot apply a fill computed from a stale row (optimistic fencing).
    version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class CashBalance(Base):
    """A user's cash in one currency (CNY for A-shares, USDT for crypto pairs).

    ``reserved_notional`` is what the user's open BUY orders quoted in this
    currency hold back, before commission: the sum of remaining quantity times
    reserve price (see :mod:`storage.repositories.reservations`, which every
    order change goes through). The commission rate is applied when it is read,
    so a new rate applies to open orders at once, as when it was recomputed.
    """

    __tablename__ = "cash_balances"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    currency: Mapped[str] = mapped_column(String(8), primary_key=True)
    amount: Mapped[Decimal] = mapped_column(ExactDecimal())
    reserved_notional: Mapped[Decimal] = mapped_column(
        ExactDecimal(), default=Decimal(0), server_default="0"
    )
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class SellReservation(Base):
    """The quantity of one symbol the user's open SELL orders hold back.

    Its own table rather than a column of ``positions``: with short selling
    allowed a SELL may rest on a symbol the user holds no position row in, and a
    position row means a holding to every reader of that table. Kept by
    :mod:`storage.repositories.reservations`; 0 once no SELL is open.
    """

    __tablename__ = "sell_reservations"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    symbol_code: Mapped[str] = mapped_column(ForeignKey("symbols.code"), primary_key=True)
    quantity: Mapped[Decimal] = mapped_column(ExactDecimal())


class Position(Base):
    """Signed quantity (negative = short) and its total cost basis.

    The basis is kept as an exact sum rather than an average price, so cash +
    basis - realized P&L + commissions is conserved to the last unit.
    """

    __tablename__ = "positions"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    symbol_code: Mapped[str] = mapped_column(ForeignKey("symbols.code"), primary_key=True)
    quantity: Mapped[Decimal] = mapped_column(ExactDecimal())
    cost_basis: Mapped[Decimal] = mapped_column(ExactDecimal())
    realized_pnl: Mapped[Decimal] = mapped_column(ExactDecimal())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Trade(Base):
    """One fill of one order."""

    __tablename__ = "trades"
    __table_args__ = (
        Index("ix_trades_user_id_id", "user_id", "id"),
        Index("ix_trades_order_id", "order_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    symbol_code: Mapped[str] = mapped_column(ForeignKey("symbols.code"))
    side: Mapped[str] = mapped_column(String(4))
    quantity: Mapped[Decimal] = mapped_column(ExactDecimal())
    price: Mapped[Decimal] = mapped_column(ExactDecimal())
    commission: Mapped[Decimal] = mapped_column(ExactDecimal())
    realized_pnl: Mapped[Decimal] = mapped_column(ExactDecimal())
    tick_time: Mapped[datetime] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class AuthSession(Base):
    """A login: its refresh token family and every access token issued from it.

    Logging out revokes the session, which invalidates all of its tokens at once.
    """

    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    # The refresh token currently valid for this session (rotated on every refresh).
    refresh_jti: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class LeaderLease(Base):
    """Leases for cluster-wide singletons (the matcher, the strategy engine).

    On PostgreSQL leadership is an advisory lock; this table records who holds
    what (for operators and for SQLite, where it is the lock itself).
    """

    __tablename__ = "leader_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    fencing_token: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())


class TickRow(Base):
    """Ticks in the SQL time-series backend (the TDengine backend keeps its own)."""

    __tablename__ = "ticks"
    __table_args__ = (Index("ix_ticks_symbol_time", "symbol", "time"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    symbol: Mapped[str] = mapped_column(String(32))
    time: Mapped[datetime] = mapped_column(UtcDateTime())
    last: Mapped[Decimal] = mapped_column(ExactDecimal())
    bid: Mapped[Decimal] = mapped_column(ExactDecimal())
    ask: Mapped[Decimal] = mapped_column(ExactDecimal())
    volume: Mapped[Decimal] = mapped_column(ExactDecimal())


class MinuteBarRow(Base):
    """One-minute bars kept by the SQL time-series store in the transaction that writes
    their ticks, so a kline read scans bars rather than every tick they hold.

    ``first_time``/``first_id`` and ``last_time``/``last_id`` are the (time, id) of
    the ticks that gave ``open`` and ``close``: a later batch holding an earlier
    tick of the minute (or one with the same time and a smaller id) replaces the
    open, exactly as aggregating the ticks in (time, id) order would.
    """

    __tablename__ = "minute_bars"

    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    bucket: Mapped[datetime] = mapped_column(UtcDateTime(), primary_key=True)
    open: Mapped[Decimal] = mapped_column(ExactDecimal())
    high: Mapped[Decimal] = mapped_column(ExactDecimal())
    low: Mapped[Decimal] = mapped_column(ExactDecimal())
    close: Mapped[Decimal] = mapped_column(ExactDecimal())
    volume: Mapped[Decimal] = mapped_column(ExactDecimal())
    trade_count: Mapped[int] = mapped_column(BigInteger())
    first_time: Mapped[datetime] = mapped_column(UtcDateTime())
    first_id: Mapped[int] = mapped_column(BigInteger())
    last_time: Mapped[datetime] = mapped_column(UtcDateTime())
    last_id: Mapped[int] = mapped_column(BigInteger())


class TickBatchKey(Base):
    """Idempotency keys of ``ingestTicks`` batches, written in the same transaction as the ticks.

    A retried batch whose key is here was stored already; ``digest`` tells a
    retry (same ticks) from a reuse of the key for other ticks.
    """

    __tablename__ = "tick_batch_keys"

    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class OutboxEvent(Base):
    """A realtime event committed in the same transaction as the change it announces.

    The event relay (:mod:`graphql_api.realtime.outbox`) publishes these rows to the
    bus in id order and deletes them once the bus took them, so an answer that
    says a change happened never depends on the bus being up at that moment.
    (Not to be confused with a WebSocket connection's send queue.)
    """

    __tablename__ = "event_outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(128))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


def watchlist_name_key(name: str) -> str:
    """The form watchlist names are compared in: trimmed, NFKC, case folded.

    ``Tech`` and ``tech `` are one name for one user (a ``CONFLICT``); the name
    is shown as it was given, trimmed.
    """
    return unicodedata.normalize("NFKC", name.strip()).casefold()


class Watchlist(Base):
    """A user's named list of symbols; the symbols and their order are its entries."""

    __tablename__ = "watchlists"
    __table_args__ = (
        UniqueConstraint("user_id", "name_key", name="uq_watchlists_user_id_name_key"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(128))
    name_key: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())

    @validates("name")
    def _keep_key(self, _field: str, name: str) -> str:
        # Every way of naming a list sets the key with it, so uniqueness never misses.
        self.name_key = watchlist_name_key(name)
        return name


class WatchlistEntry(Base):
    """One symbol on a watchlist at ``position`` (0-based, dense: 0 … n-1).

    Every edit rewrites a list's entries in one transaction, so positions never
    need shifting in place (which a unique position would forbid mid-update).
    """

    __tablename__ = "watchlist_entries"
    __table_args__ = (
        UniqueConstraint("watchlist_id", "position", name="uq_watchlist_entries_position"),
    )

    watchlist_id: Mapped[int] = mapped_column(
        ForeignKey("watchlists.id", ondelete="CASCADE"), primary_key=True
    )
    symbol_code: Mapped[str] = mapped_column(ForeignKey("symbols.code"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)


class Alert(Base):
    """A user's standing condition on one symbol's price (or an indicator of its bars).

    Which columns apply depends on ``kind`` (see :mod:`graphql_api.alerts.conditions`):
    ``level`` for a price cross or an indicator threshold, ``percent`` and
    ``window_seconds`` for a move, ``interval``, ``indicator`` and ``period`` for an
    indicator; the others are null.
    """

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_user_id_id", "user_id", "id"),
        Index("ix_alerts_status", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    symbol_code: Mapped[str] = mapped_column(ForeignKey("symbols.code"))
    kind: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    level: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    percent: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    window_seconds: Mapped[int | None] = mapped_column(Integer)
    interval: Mapped[str | None] = mapped_column(String(8))
    indicator: Mapped[str | None] = mapped_column(String(16))
    period: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    fire_count: Mapped[int] = mapped_column(Integer, default=0)
    last_fired_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class AlertFiring(Base):
    """One time an alert's condition was met: stored once per (alert, trigger time).

    ``triggered_at`` is the time of the tick (or the start of the closed bar) that
    met the condition, so a second evaluator seeing the same tick cannot store it
    again (the unique key), and ``price`` is that tick's last price (the bar's close).
    """

    __tablename__ = "alert_firings"
    __table_args__ = (
        UniqueConstraint("alert_id", "triggered_at", name="uq_alert_firings_alert_trigger"),
        Index("ix_alert_firings_user_id_id", "user_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    symbol_code: Mapped[str] = mapped_column(ForeignKey("symbols.code"))
    kind: Mapped[str] = mapped_column(String(32))
    price: Mapped[Decimal] = mapped_column(ExactDecimal())
    value: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    message: Mapped[str] = mapped_column(Text)
    triggered_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Webhook(Base):
    """A user's HTTP(S) endpoint that receives the events it subscribed to, signed.

    ``secret`` signs every delivery (HMAC-SHA256); it is shown to the user once,
    when the webhook is registered, and kept here to sign with.
    """

    __tablename__ = "webhooks"
    __table_args__ = (Index("ix_webhooks_user_id", "user_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str] = mapped_column(String(128))
    # Event names, comma-separated (e.g. "ALERT_FIRED").
    events: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class WebhookDelivery(Base):
    """One event for one webhook: PENDING until the endpoint answers 2xx (DELIVERED) or
    the attempts run out (DEAD). Durable, so a restarted dispatcher resumes it.

    ``event_key`` names the event (e.g. ``alertFiring:42``): unique per webhook, so an
    event is enqueued for a webhook at most once.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", "event_key", name="uq_webhook_deliveries_event"),
        Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_webhook_id_id", "webhook_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(32))
    event_key: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
