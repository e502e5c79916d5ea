"""Migrations produce exactly the models' schema, on SQLite and on PostgreSQL."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

from graphql_api.market.sessions import session_from_json
from storage.engine import create_engine, create_session_factory
from storage.migrate import alembic_config
from storage.models import Base, Order, Symbol, User
from storage.repositories import accounts as account_repo
from storage.repositories import reservations
from storage.repositories import users as user_repo
from storage.timeseries import KlineInterval, Tick
from storage.timeseries.sql import SqlTimeSeriesStore
from storage.types import UtcDateTime


async def test_migrated_database_matches_the_models(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:

            def diff(sync_connection: Any) -> list[Any]:
                context = MigrationContext.configure(sync_connection)
                return list(compare_metadata(context, Base.metadata))

            differences = await connection.run_sync(diff)
    finally:
        await engine.dispose()
    assert differences == []


async def test_usernames_that_differ_only_in_case_are_kept_apart(tmp_path: Path) -> None:
    """0004 makes usernames case-insensitive; earlier databases may hold ``demo`` and
    ``Demo``: the oldest keeps the name, the others get ``<name>#<id>``."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    try:
        # given: a database at 0002 with three spellings of one name
        await _upgrade(engine, "0002")
        users = sa.table(
            "users",
            sa.column("username", sa.String),
            sa.column("role", sa.String),
            sa.column("created_at", UtcDateTime()),
        )
        now = datetime.now(UTC)
        async with engine.begin() as connection:
            await connection.execute(
                users.insert(),
                [
                    {"username": name, "role": "TRADER", "created_at": now}
                    for name in ("demo", "Demo", "bob", "DEMO")
                ],
            )
        # when
        await _upgrade(engine, "head")
        # then
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    sa.text("SELECT id, username, username_key FROM users ORDER BY id")
                )
            ).all()
        assert [tuple(row) for row in rows] == [
            (1, "demo", "demo"),
            (2, "Demo#2", "demo#2"),
            (3, "bob", "bob"),
            (4, "DEMO#4", "demo#4"),
        ]
        async with create_session_factory(engine)() as session:
            found = await user_repo.user_by_username(session, "DeMo")
            assert found is not None and found.id == 1
    finally:
        await engine.dispose()


async def _upgrade(engine: AsyncEngine, revision: str) -> None:
    def upgrade(connection: Any) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(upgrade)


async def test_0013_turns_the_close_minute_into_a_session_with_the_same_meaning(
    database_url: str,
) -> None:
    """Down to 0012 the demo's sessions become close minutes again (15:00 Shanghai is
    07:00 UTC); up again each minute becomes a 24-hour UTC window closing then."""
    engine = create_engine(database_url)
    try:
        # given a database at 0012 (with daily bars pointing at its symbols), whose
        # symbols hold only their close minute (UTC)
        await _downgrade(engine, "0012")
        async with engine.connect() as connection:
            result = await connection.execute(
                sa.text("SELECT code, session_close_utc_minute FROM symbols")
            )
            minutes = {str(code): int(minute) for code, minute in result.all()}
        assert (minutes["600519.SH"], minutes["BTCUSDT"]) == (7 * 60, 0)
        # when it is upgraded
        await _upgrade(engine, "head")
        # then each symbol trades around the clock with its trading day ending then
        async with create_session_factory(engine)() as session:
            rows = {row.code: row for row in await session.scalars(sa.select(Symbol))}
        every_day = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"]
        assert rows["600519.SH"].trading_session == {
            "timezone": "UTC",
            "windows": [{"days": every_day, "open": "07:00", "close": "07:00"}],
        }
        assert rows["BTCUSDT"].trading_session == {
            "timezone": "UTC",
            "windows": [{"days": every_day, "open": "00:00", "close": "24:00"}],
        }
        assert {row.off_session_orders for row in rows.values()} == {"REFUSE"}
        moutai = session_from_json(rows["600519.SH"].trading_session)
        placed = datetime(2026, 12, 5, 6, 59, tzinfo=UTC)  # a Saturday: open all the same
        assert moutai.is_open(placed)
        assert moutai.day_close(placed) == datetime(2026, 12, 5, 7, 0, tzinfo=UTC)
    finally:
        await engine.dispose()


async def _downgrade(engine: AsyncEngine, revision: str) -> None:
    def downgrade(connection: Any) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(downgrade)


async def test_0018_fills_the_kept_reservations_from_the_open_orders(database_url: str) -> None:
    """0018 adds ``cash_balances.reserved_notional`` and ``sell_reservations`` and fills
    them with what the orders open at upgrade time hold, exactly."""
    engine = create_engine(database_url)
    try:
        # given a database at 0017 with open and closed orders, some partly filled
        await _downgrade(engine, "0017")
        sessions = create_session_factory(engine)
        async with sessions() as session:
            demo = await session.scalar(sa.select(User.id).where(User.username == "demo"))
            assert demo is not None
            now = datetime.now(UTC)
            session.add_all(
                Order(
                    user_id=demo,
                    symbol_code=symbol,
                    side=side,
                    type="LIMIT",
                    time_in_force="GTC",
                    quantity=Decimal(quantity),
                    limit_price=Decimal(price),
                    status=status,
                    filled_quantity=Decimal(filled),
                    reserve_price=Decimal(price) if side == "BUY" else None,
                    version=0,
                    created_at=now,
                    updated_at=now,
                )
                for symbol, side, quantity, filled, price, status in [
                    ("600519.SH", "BUY", "300", "0", "1500.00", "NEW"),
                    ("600036.SH", "BUY", "500", "200", "35.1234567891", "PARTIALLY_FILLED"),
                    ("600519.SH", "BUY", "100", "100", "1500.00", "FILLED"),
                    ("ETHUSDT", "BUY", "1.2345", "0.0345", "3400.17", "PARTIALLY_FILLED"),
                    ("ETHUSDT", "BUY", "2", "0", "3400.00", "CANCELED"),
                    ("000001.SZ", "SELL", "500", "200", "11.00", "PARTIALLY_FILLED"),
                    ("000001.SZ", "SELL", "100", "0", "11.10", "NEW"),
                    ("ETHUSDT", "SELL", "0.5", "0", "3500.00", "EXPIRED"),
                ]
            )
            await session.commit()
        # when it is upgraded
        await _upgrade(engine, "head")
        # then the kept values are the recomputed ones, to the last digit
        async with sessions() as session:
            cny, usdt = (demo, "CNY"), (demo, "USDT")
            kept = await reservations.reserved_notional(session, [cny, usdt])
            assert kept == {
                cny: Decimal("450000.00") + 300 * Decimal("35.1234567891"),
                usdt: Decimal("1.2") * Decimal("3400.17"),
            }
            for key in (cny, usdt):
                assert kept[key] == await account_repo.reserved_for_buys(
                    session, demo, key[1], Decimal(0)
                )
            sells = await reservations.reserved_quantity(
                session, [(demo, "000001.SZ"), (demo, "ETHUSDT")]
            )
            assert sells == {(demo, "000001.SZ"): Decimal(400), (demo, "ETHUSDT"): Decimal(0)}
    finally:
        await engine.dispose()


def _migrate_after(url: str, start: Any, results: Any) -> None:
    """In a process of its own: wait for the others, then migrate ``url``."""
    import asyncio

    from storage.migrate import upgrade_to_head

    async def migrate() -> str:
        engine = create_engine(url)
        try:
            await upgrade_to_head(engine)
            return "ok"
        except Exception as error:
            return f"{type(error).__name__}: {error}"[:300]
        finally:
            await engine.dispose()

    start.wait()
    results.put(asyncio.run(migrate()))


def test_processes_starting_together_on_a_fresh_sqlite_file_all_migrate_it(
    tmp_path: Path,
) -> None:
    # `serve --workers N` starts N processes that each migrate at start-up; before the
    # lock file, the second one's CREATE TABLE failed on most fresh files
    context = multiprocessing.get_context("spawn")
    for attempt in range(3):
        url = f"sqlite+aiosqlite:///{tmp_path / f'fresh-{attempt}.db'}"
        start, results = context.Barrier(3), context.Queue()
        processes = [
            context.Process(target=_migrate_after, args=(url, start, results)) for _ in range(3)
        ]
        for process in processes:
            process.start()
        outcomes = [results.get(timeout=120) for _ in processes]
        for process in processes:
            process.join(30)
        assert outcomes == ["ok", "ok", "ok"], outcomes


async def test_0019_folds_the_stored_ticks_into_minute_bars(database_url: str) -> None:
    """0019 creates ``minute_bars`` from the ticks stored before it: the bars read
    after the upgrade are the ones the ticks give, rows the store cannot read aside."""
    engine = create_engine(database_url)
    store = SqlTimeSeriesStore(engine)
    symbol = "MIGRATED"
    start = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    try:
        # given ticks over three minutes, two with the same time, written by the store
        ticks = [
            Tick(symbol, start + timedelta(seconds=s), Decimal(p), Decimal(p), Decimal(p), v)
            for s, p, v in [
                (0, "10.00", Decimal("1")),
                (59.999999, "11.00", Decimal("2.5")),
                (30, "9.00", Decimal("0.5")),
                (60, "12.00", Decimal("1")),
                (60, "12.50", Decimal("1")),
                (185, "8.00", Decimal("3")),
            ]
        ]
        await store.write_ticks(ticks[:3])
        await store.write_ticks(ticks[3:])
        before = {
            interval: await store.klines(symbol, interval, None, None, 100)
            for interval in KlineInterval
            if interval.is_intraday
        }
        assert [bar.trade_count for bar in before[KlineInterval.MINUTE_1]] == [3, 2, 1]
        # and a database taken back to 0018 (no bars), with an unreadable tick stored by hand
        await _downgrade(engine, "0018")
        async with engine.begin() as connection:
            postgres = connection.dialect.name == "postgresql"
            bad = (
                "('MIGRATED', '2026-03-02 01:00:10+00', 'NaN', 1, 1, 1)"
                if postgres
                else "('MIGRATED', '2026-03-02T01:00:10.000000Z', 'x', '1', '1', '1')"
            )
            await connection.execute(
                sa.text(f"INSERT INTO ticks (symbol, time, last, bid, ask, volume) VALUES {bad}")
            )
        # when it is upgraded
        await _upgrade(engine, "head")
        # then every interval reads the same bars as before
        for interval, bars in before.items():
            assert await store.klines(symbol, interval, None, None, 100) == bars
        assert before[KlineInterval.MINUTE_1][0].open == Decimal("10.00")
        assert before[KlineInterval.MINUTE_1][0].close == Decimal("11.00")
        assert before[KlineInterval.MINUTE_1][1].close == Decimal("12.50")
    finally:
        await engine.dispose()
