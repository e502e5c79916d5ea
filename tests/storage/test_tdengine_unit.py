"""TDengine backend tests that need no server.

What runs against a real TDengine 3.3 is the shared time-series contract suite
(enabled by ``TEST_TDENGINE_URL``). Here: URL parsing, naming, exact encodings,
the SQL text, and the write path's retry / buffer / back-pressure behaviour,
driven through a scripted stand-in for the connection so outages can be staged.
"""

from __future__ import annotations

import asyncio
import re
import sys
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.timeseries.base import (
    Bar,
    BatchKey,
    BatchOutcome,
    KlineInterval,
    Tick,
    TickBatch,
    TimeSeriesStore,
    TimeSeriesWriteError,
)
from storage.timeseries.tdengine import (
    TDengineConfigError,
    TDengineError,
    TDengineTimeSeriesStore,
    parse_url,
    sql,
)
from storage.timeseries.tdengine.buffer import PendingBatch, RetryBuffer
from storage.timeseries.tdengine.codec import (
    MAX_ABS_VALUE,
    Precision,
    decode_decimal,
    decode_time,
    encode_bound,
    encode_decimal,
    encode_time,
)
from storage.timeseries.tdengine.errors import code_from, is_transient
from storage.timeseries.tdengine.naming import (
    BARS_1M_PREFIX,
    TICKS_PREFIX,
    default_exchange,
    subtable_name,
    symbol_problem,
)
from storage.timeseries.tdengine.pool import Row, _WebSocketConnection, connection_factory
from storage.timeseries.tdengine.sequence import (
    KEYED_INDEX_BITS,
    SEQ_EPOCH_NS,
    TAG_BITS,
    WriteSequence,
    keyed_sequence,
)

T0 = datetime(2024, 3, 4, 9, 30, tzinfo=UTC)
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")
NETWORK_DOWN = 0x000B  # TSDB_CODE_RPC_NETWORK_UNAVAIL
SYNTAX_ERROR = 0x2600  # TSDB_CODE_PAR_SYNTAX_ERROR


# --- URLs ---------------------------------------------------------------------------------


def test_native_url_with_everything() -> None:
    url = parse_url("taos://trader:s%40cret@td.example:7030/Market")
    assert (url.scheme, url.host, url.port, url.user, url.password, url.database) == (
        "taos",
        "td.example",
        7030,
        "trader",
        "s@cret",
        "market",
    )


def test_defaults_follow_the_scheme() -> None:
    native = parse_url("taos://localhost")
    websocket = parse_url("taosws://localhost/")
    assert (native.port, native.user, native.password, native.database) == (
        6030,
        "root",
        "taosdata",
        "market",
    )
    assert (websocket.scheme, websocket.port) == ("taosws", 6041)


def test_password_stays_out_of_logs() -> None:
    url = parse_url("taosws://root:hunter2@localhost:6041/market")
    assert "hunter2" not in url.redacted
    assert "hunter2" not in repr(url)


@pytest.mark.parametrize(
    "bad",
    [
        "postgresql://localhost/market",
        "http://localhost:6041/market",
        "taos://localhost/1market",
        "taos://localhost/mar-ket",
        "taos://localhost/market?precision=us",
        "taos://localhost:notaport/market",
    ],
)
def test_bad_urls_are_refused(bad: str) -> None:
    with pytest.raises(TDengineConfigError):
        parse_url(bad)


def test_missing_websocket_connector_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "taosws", None)  # makes ``import taosws`` fail
    with pytest.raises(TDengineConfigError, match="taos-ws-py"):
        connection_factory(parse_url("taosws://localhost/market"))


def test_missing_native_client_says_where_libtaos_comes_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "taos", None)
    with pytest.raises(TDengineConfigError, match="LD_LIBRARY_PATH"):
        connection_factory(parse_url("taos://localhost/market"))


# --- naming -------------------------------------------------------------------------------


def test_subtable_names_are_deterministic_valid_identifiers() -> None:
    name = subtable_name(TICKS_PREFIX, "600519.SH")
    assert name == subtable_name(TICKS_PREFIX, "600519.SH")
    assert name.startswith("t_600519_sh_")
    assert IDENTIFIER.fullmatch(name)
    assert subtable_name(BARS_1M_PREFIX, "600519.SH") != name


@pytest.mark.parametrize(
    ("one", "other"),
    [("600519.SH", "600519_SH"), ("BTCUSDT", "btcusdt"), ("A.B", "A-B"), ("中国", "日本")],
)
def test_symbols_that_sanitise_alike_still_get_their_own_table(one: str, other: str) -> None:
    assert subtable_name(TICKS_PREFIX, one) != subtable_name(TICKS_PREFIX, other)


def test_no_collisions_across_many_similar_codes() -> None:
    symbols = [f"{code:06d}.{suffix}" for code in range(3000) for suffix in ("SH", "SZ", "sh")]
    symbols += [symbol.replace(".", "_") for symbol in symbols]
    names = {subtable_name(TICKS_PREFIX, symbol) for symbol in symbols}
    assert len(names) == len(symbols)


@given(st.text(min_size=1, max_size=32))
def test_any_symbol_gives_a_legal_table_name(symbol: str) -> None:
    name = subtable_name(TICKS_PREFIX, symbol)
    assert IDENTIFIER.fullmatch(name)
    assert len(name) <= 192


def test_exchange_tag_from_suffix() -> None:
    assert default_exchange("600519.SH") == "SSE"
    assert default_exchange("000001.sz") == "SZSE"
    assert default_exchange("0700.HK") == "HKEX"
    assert default_exchange("BTCUSDT") == ""


def test_symbol_limits() -> None:
    assert symbol_problem("600519.SH") is None
    assert symbol_problem("") is not None
    assert symbol_problem("X" * 33) is not None
    assert symbol_problem("BAD\nSYMBOL") is not None


# --- exact encodings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "-0",
        "0.00000001",
        "-0.00000001",
        "1.5",
        "1.50000000",
        "1.500000000000",
        "1E+5",
        "123456.78901234",
        "92233720368.54775807",
        "-92233720368.54775808",
        "0.1",
        "1688.88",
    ],
)
def test_awkward_decimals_round_trip_exactly(text: str) -> None:
    value = Decimal(text)
    assert decode_decimal(encode_decimal(value)) == value


@given(
    st.decimals(
        min_value=-MAX_ABS_VALUE,
        max_value=MAX_ABS_VALUE,
        places=8,
        allow_nan=False,
        allow_infinity=False,
    )
)
def test_every_storable_decimal_round_trips(value: Decimal) -> None:
    assert decode_decimal(encode_decimal(value)) == value


@pytest.mark.parametrize(
    "text",
    ["0.000000001", "1.123456789", "92233720368.54775808", "1E+30", "1E-30", "NaN", "Infinity"],
)
def test_unstorable_decimals_are_refused_not_rounded(text: str) -> None:
    with pytest.raises(ValueError, match=r"decimal places|range|finite"):
        encode_decimal(Decimal(text))


def test_decoded_decimals_print_plainly() -> None:
    assert str(decode_decimal(150_000_000)) == "1.5"
    assert str(decode_decimal(10_000_000_000)) == "100"
    assert str(decode_decimal(0)) == "0"


@pytest.mark.parametrize("precision", list(Precision))
def test_times_round_trip_in_every_precision(precision: Precision) -> None:
    moment = T0 + timedelta(milliseconds=123)
    assert decode_time(encode_time(moment, precision), precision) == moment


def test_microseconds_are_kept_at_us_and_ns() -> None:
    moment = T0 + timedelta(microseconds=123_457)
    assert encode_time(moment, Precision.MICROSECONDS) == 1_709_544_600_123_457
    assert encode_time(moment, Precision.NANOSECONDS) == 1_709_544_600_123_457_000
    with pytest.raises(ValueError, match="sub-millisecond"):
        encode_time(moment, Precision.MILLISECONDS)


def test_times_are_zone_independent() -> None:
    shanghai = T0.astimezone(timezone(timedelta(hours=8)))
    assert encode_time(shanghai, Precision.MICROSECONDS) == encode_time(T0, Precision.MICROSECONDS)
    assert decode_time(0, Precision.MICROSECONDS) == datetime(1970, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="naive"):
        encode_time(datetime(2024, 1, 1), Precision.MICROSECONDS)


def test_bounds_round_up_so_inclusive_and_exclusive_both_hold() -> None:
    moment = T0 + timedelta(microseconds=1500)
    t0_ms = encode_time(T0, Precision.MILLISECONDS)
    assert encode_bound(moment, Precision.MILLISECONDS) == t0_ms + 2
    before_epoch = datetime(1969, 12, 31, 23, 59, 59, 999_500, tzinfo=UTC)
    assert encode_bound(before_epoch, Precision.MILLISECONDS) == 0


# --- SQL text -----------------------------------------------------------------------------


def _groups(rows_per_symbol: int, symbols: int = 3) -> list[sql.SubtableRows]:
    return [
        sql.SubtableRows(
            table=subtable_name(TICKS_PREFIX, f"{code:06d}.SH"),
            symbol=f"{code:06d}.SH",
            exchange="SSE",
            rows=[(1_000_000 * n, n, 150_000_000 + n, 1, 2, 3) for n in range(rows_per_symbol)],
        )
        for code in range(symbols)
    ]


def test_one_insert_for_many_tables_with_auto_create() -> None:
    groups = _groups(2, symbols=2)
    [statement] = sql.insert_statements(
        "market", sql.TICKS, sql.TICK_COLUMNS, groups, max_bytes=1_000_000
    )
    first, second = (group.table for group in groups)
    assert statement == (
        f"INSERT INTO market.{first} USING market.ticks (symbol, exchange) "
        "TAGS ('000000.SH', 'SSE') (ts, seq, last_price, bid, ask, volume) VALUES "
        "(0, 0, 150000000, 1, 2, 3) (1000000, 1, 150000001, 1, 2, 3) "
        f"market.{second} USING market.ticks (symbol, exchange) "
        "TAGS ('000001.SH', 'SSE') (ts, seq, last_price, bid, ask, volume) VALUES "
        "(0, 0, 150000000, 1, 2, 3) (1000000, 1, 150000001, 1, 2, 3)"
    )


def test_big_batches_are_split_under_the_statement_limit() -> None:
    groups = _groups(400)
    statements = sql.insert_statements("market", sql.TICKS, sql.TICK_COLUMNS, groups, 4096)
    assert len(statements) > 3
    seen: list[str] = []
    for statement in statements:
        assert len(statement.encode()) <= 4096
        assert statement.startswith("INSERT INTO market.t_")
        for clause in re.split(r" (?=market\.t_)", statement.removeprefix("INSERT INTO ")):
            head, _, values = clause.partition(" VALUES ")
            assert "USING market.ticks" in head
            table = head.split()[0].removeprefix("market.")
            seen += [f"{table}:{row}" for row in re.findall(r"\(([-\d, ]+)\)", values)]
    expected = [
        f"{group.table}:{', '.join(map(str, row))}" for group in groups for row in group.rows
    ]
    assert seen == expected


def test_tag_strings_are_escaped() -> None:
    assert sql.quote("O'Neil\\X") == "'O\\'Neil\\\\X'"
    [statement] = sql.insert_statements(
        "market",
        sql.TICKS,
        sql.TICK_COLUMNS,
        [sql.SubtableRows("t_x_0", "A'); DROP DATABASE market; --", "", [(1, 1, 1, 1, 1, 1)])],
        4096,
    )
    assert "TAGS ('A\\'); DROP DATABASE market; --', '')" in statement


def test_kline_query_is_aggregated_by_tdengine_on_epoch_aligned_windows() -> None:
    statement = sql.select_klines(
        "market", "600519.SH", KlineInterval.MINUTE_15, 100, 200, 50, newest=False
    )
    assert statement == (
        "SELECT CAST(_wstart AS BIGINT), FIRST(last_price), MAX(last_price), MIN(last_price), "
        "LAST(last_price), SUM(volume), COUNT(*) FROM market.ticks "
        "WHERE symbol = '600519.SH' AND ts >= 100 AND ts < 200 "
        "INTERVAL(15m) ORDER BY _wstart ASC LIMIT 50"
    )
    newest = sql.select_klines("market", "X", KlineInterval.HOUR_1, None, None, 5, newest=True)
    assert "INTERVAL(1h) ORDER BY _wstart DESC LIMIT 5" in newest
    assert "ts >=" not in newest


def test_only_minute_and_hour_units_which_ignore_the_time_zone() -> None:
    units = {sql.interval_unit(i) for i in KlineInterval if i.is_intraday}
    assert units == {"1m", "5m", "15m", "1h"}
    with pytest.raises(ValueError, match="1d"):
        sql.interval_unit(KlineInterval.DAY_1)


def test_tick_and_latest_queries() -> None:
    assert sql.select_ticks("market", "A", 1, None, 10, newest=False) == (
        "SELECT CAST(ts AS BIGINT), last_price, bid, ask, volume FROM market.ticks "
        "WHERE symbol = 'A' AND ts >= 1 ORDER BY ts ASC LIMIT 10"
    )
    assert sql.select_latest("market", ["A", "B"]) == (
        "SELECT symbol, CAST(LAST(ts) AS BIGINT), LAST(last_price), LAST(bid), LAST(ask), "
        "LAST(volume) FROM market.ticks WHERE symbol IN ('A', 'B') GROUP BY symbol"
    )


@pytest.mark.parametrize("keep_days", [1, 2, 29, 30, 31, 3650, 365_000])
def test_keep_always_satisfies_tdengine_duration_rules(keep_days: int) -> None:
    statement = sql.create_database("market", Precision.MICROSECONDS, keep_days)
    match = re.search(r"KEEP (\d+)d DURATION (\d+)m$", statement)
    assert match is not None
    keep_minutes, duration = int(match.group(1)) * 1440, int(match.group(2))
    assert 60 <= duration <= 3650 * 1440
    assert keep_minutes >= 3 * duration
    assert statement.startswith("CREATE DATABASE IF NOT EXISTS market PRECISION 'us'")


def test_default_keep_is_the_servers() -> None:
    assert sql.create_database("market", Precision.NANOSECONDS, None) == (
        "CREATE DATABASE IF NOT EXISTS market PRECISION 'ns'"
    )


# --- error classification -----------------------------------------------------------------


def test_only_request_errors_are_permanent() -> None:
    assert is_transient(None)
    assert is_transient(NETWORK_DOWN)
    assert is_transient(0x0019)  # RPC timeout
    assert not is_transient(SYNTAX_ERROR)
    assert not is_transient(0x060B)  # timestamp older than KEEP


def test_codes_from_both_connectors() -> None:
    assert code_from(-2147473917, "") == 0x2603  # taospy: signed 0x80002603
    assert code_from(None, "[0x000b] Unable to establish connection") == NETWORK_DOWN
    assert code_from(None, "socket closed") is None


# --- the retry buffer ---------------------------------------------------------------------


def test_buffer_is_bounded_in_rows_and_keeps_order() -> None:
    buffer = RetryBuffer(max_rows=10)
    first, second = PendingBatch(("a",), rows=6), PendingBatch(("b",), rows=4)
    assert buffer.offer(first)
    assert buffer.offer(second)
    assert not buffer.offer(PendingBatch(("c",), rows=1))
    assert (len(buffer), buffer.rows) == (2, 10)
    assert buffer.pop() is first
    assert buffer.peek() is second
    assert buffer.clear() == 4
    assert buffer.rows == 0


# --- the store against a scripted connection ----------------------------------------------


class FakeServer:
    """Records statements and answers queries; ``failure`` makes every call fail."""

    def __init__(self, precision: str = "us") -> None:
        self.precision = precision
        self.executed: list[str] = []
        self.failure: TDengineError | None = None
        self.answer: Callable[[str], list[Row]] = lambda statement: []
        self.connections = 0
        self.closed = 0

    def connect(self) -> FakeConnection:
        if self.failure is not None:
            raise self.failure
        self.connections += 1
        return FakeConnection(self)

    def inserts(self) -> list[str]:
        return [statement for statement in self.executed if statement.startswith("INSERT")]


class FakeConnection:
    def __init__(self, server: FakeServer) -> None:
        self.server = server

    def execute(self, statement: str) -> int:
        if self.server.failure is not None:
            raise self.server.failure
        self.server.executed.append(statement)
        return 1

    def query(self, statement: str) -> list[Row]:
        if self.server.failure is not None:
            raise self.server.failure
        if "ins_databases" in statement:
            return [(self.server.precision,)]
        if statement.startswith("DESCRIBE"):
            schema = sql.TICKS_SCHEMA if "ticks" in statement else sql.BARS_1M_SCHEMA
            # DESCRIBE's note column marks a second primary-key column (3.3.0+)
            return [
                (name, kind, 8, "COMPOSITE KEY" if index == 1 and name == "seq" else "")
                for index, (name, kind) in enumerate(schema.items())
            ]
        return self.server.answer(statement)

    def close(self) -> None:
        self.server.closed += 1


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture
async def store(server: FakeServer) -> AsyncIterator[TDengineTimeSeriesStore]:
    opened = await TDengineTimeSeriesStore.open(
        "taos://root:taosdata@localhost:6030/market",
        buffer_max_rows=5,
        retry_backoff=0,
        close_timeout=1,
        connect=server.connect,
    )
    yield opened
    await opened.close()


def tick(n: int, symbol: str = "600519.SH", last: str = "1688.5") -> Tick:
    return Tick(
        symbol=symbol,
        time=T0 + timedelta(seconds=n),
        last=Decimal(last),
        bid=Decimal("1688.4"),
        ask=Decimal("1688.6"),
        volume=Decimal("100"),
    )


async def test_open_creates_database_and_super_tables(server: FakeServer) -> None:
    store: TimeSeriesStore = await TDengineTimeSeriesStore.open(
        "taos://localhost/Quotes", keep_days=30, connect=server.connect
    )
    await store.close()
    assert server.executed[0] == (
        "CREATE DATABASE IF NOT EXISTS quotes PRECISION 'us' KEEP 30d DURATION 14400m"
    )
    assert server.executed[1].startswith("CREATE STABLE IF NOT EXISTS quotes.ticks (ts TIMESTAMP")
    assert server.executed[2].startswith("CREATE STABLE IF NOT EXISTS quotes.bars_1m")


async def test_existing_database_with_another_precision_is_refused() -> None:
    server = FakeServer(precision="ms")
    with pytest.raises(TDengineConfigError, match="precision 'ms'"):
        await TDengineTimeSeriesStore.open("taos://localhost/market", connect=server.connect)


async def test_incompatible_existing_schema_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeServer()
    original = FakeConnection.query

    def float_prices(self: FakeConnection, statement: str) -> list[Row]:
        rows = original(self, statement)
        if statement == "DESCRIBE market.ticks":
            return [(name, "DOUBLE" if name == "last_price" else kind) for name, kind, *_ in rows]
        return rows

    monkeypatch.setattr(FakeConnection, "query", float_prices)
    with pytest.raises(TDengineConfigError, match="incompatible schema"):
        await TDengineTimeSeriesStore.open("taos://localhost/market", connect=server.connect)


def _describe_ticks_as(
    monkeypatch: pytest.MonkeyPatch, rows: list[tuple[str, str, int, str]]
) -> None:
    original = FakeConnection.query

    def described(self: FakeConnection, statement: str) -> list[Row]:
        if statement == "DESCRIBE market.ticks":
            return list(rows)
        return original(self, statement)

    monkeypatch.setattr(FakeConnection, "query", described)


# What DESCRIBE showed for the ticks table of the version before the seq key.
PREVIOUS_TICKS = [
    ("ts", "TIMESTAMP", 8, ""),
    ("last_price", "BIGINT", 8, ""),
    ("bid", "BIGINT", 8, ""),
    ("ask", "BIGINT", 8, ""),
    ("volume", "BIGINT", 8, ""),
    ("symbol", "VARCHAR", 32, "TAG"),
    ("exchange", "VARCHAR", 16, "TAG"),
]


async def test_a_database_from_the_version_before_seq_is_refused_with_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FakeServer()
    _describe_ticks_as(monkeypatch, PREVIOUS_TICKS)
    with pytest.raises(TDengineConfigError) as refused:
        await TDengineTimeSeriesStore.open("taos://localhost/market", connect=server.connect)
    message = str(refused.value)
    assert "created by an earlier quantgraph version" in message
    assert "Upgrading a database" in message and "new database" in message
    assert not server.inserts()
    assert server.closed == server.connections  # nothing left open


async def test_a_seq_column_that_is_not_part_of_the_key_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plain_column = [PREVIOUS_TICKS[0], ("seq", "BIGINT", 8, ""), *PREVIOUS_TICKS[1:]]
    _describe_ticks_as(monkeypatch, plain_column)
    with pytest.raises(TDengineConfigError, match="not a PRIMARY KEY"):
        await TDengineTimeSeriesStore.open("taos://localhost/market", connect=FakeServer().connect)
    elsewhere = [*PREVIOUS_TICKS[:3], ("seq", "BIGINT", 8, ""), *PREVIOUS_TICKS[3:]]
    _describe_ticks_as(monkeypatch, elsewhere)
    with pytest.raises(TDengineConfigError, match="not as its second column"):
        await TDengineTimeSeriesStore.open("taos://localhost/market", connect=FakeServer().connect)


async def test_the_current_layout_with_its_composite_key_is_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    current = [PREVIOUS_TICKS[0], ("seq", "BIGINT", 8, "COMPOSITE KEY"), *PREVIOUS_TICKS[1:]]
    _describe_ticks_as(monkeypatch, current)
    store = await TDengineTimeSeriesStore.open(
        "taos://localhost/market", connect=FakeServer().connect
    )
    await store.close()


async def test_start_up_ddl_is_retried_while_the_database_settles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FakeServer()
    original = FakeConnection.execute
    failures = iter([TDengineError("Sync leader is unreachable", 0x090C)])

    def settling(self: FakeConnection, statement: str) -> int:
        if statement.startswith("CREATE STABLE"):
            failure = next(failures, None)
            if failure is not None:
                raise failure
        return original(self, statement)

    monkeypatch.setattr(FakeConnection, "execute", settling)
    store = await TDengineTimeSeriesStore.open(
        "taos://localhost/market", vgroups=1, retry_backoff=0, connect=server.connect
    )
    assert server.executed[0].endswith(" VGROUPS 1")
    await store.drop_database()
    assert server.executed[-1] == "DROP DATABASE IF EXISTS market"


async def test_unreachable_server_at_start_up_is_an_error() -> None:
    server = FakeServer()
    server.failure = TDengineError("Unable to establish connection", NETWORK_DOWN)
    with pytest.raises(TDengineError):
        await TDengineTimeSeriesStore.open("taos://localhost/market", connect=server.connect)


def _rows(statement: str) -> list[tuple[int, ...]]:
    return [
        tuple(int(value) for value in row.split(", "))
        for row in re.findall(r"\((-?\d+(?:, -?\d+)+)\)", statement)
    ]


async def test_write_is_one_insert_keeping_equal_timestamps_in_write_order(
    store: TDengineTimeSeriesStore, server: FakeServer
) -> None:
    await store.write_ticks([tick(1, last="1"), tick(0), tick(1, last="2"), tick(0, "BTCUSDT")])
    [statement] = server.inserts()
    assert statement.count(" USING market.ticks ") == 2
    assert "(ts, seq, last_price, bid, ask, volume)" in statement
    rows = _rows(statement)
    assert len(rows) == 4
    moutai = [row for row in rows if row[2] in (100_000_000, 200_000_000, 168_850_000_000)][:3]
    # (ts, seq) order within a table, whatever the batch order; both ticks at :01 kept,
    # the one written first with the lower seq
    assert [(row[0], row[2]) for row in moutai] == [
        (1709544600000000, 168_850_000_000),
        (1709544601000000, 100_000_000),
        (1709544601000000, 200_000_000),
    ]
    assert moutai[1][1] < moutai[2][1]
    assert len({row[1] for row in rows}) == 4  # one seq per tick


async def test_later_batches_get_higher_seq_even_when_the_clock_stands_still(
    server: FakeServer,
) -> None:
    store = await TDengineTimeSeriesStore.open("taos://localhost/market", connect=server.connect)
    store._sequence = WriteSequence(clock_ns=lambda: SEQ_EPOCH_NS + 5_000, tag=7)
    await store.write_ticks([tick(0), tick(0, last="2")])
    await store.write_ticks([tick(0, last="3")])
    await store.close()
    first, second = (_rows(statement) for statement in server.inserts())
    seqs = [row[1] for row in first + second]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert all(seq & 0xFFF == 7 for seq in seqs)  # the process tag in the low bits


def test_the_sequence_follows_the_clock_and_never_goes_back() -> None:
    now = [SEQ_EPOCH_NS + 10_000_000]
    sequence = WriteSequence(clock_ns=lambda: now[0], tag=0)
    first = sequence.take(3)
    assert [value >> TAG_BITS for value in first] == [10_000, 10_001, 10_002]
    now[0] -= 5_000_000  # the wall clock steps back 5 ms
    assert sequence.take(1)[0] > first[-1]
    now[0] += 1_000_000_000
    assert sequence.take(1)[0] >> TAG_BITS == 1_005_000  # back in step with the clock
    with pytest.raises(ValueError, match="tag must be"):
        WriteSequence(tag=1 << TAG_BITS)


def test_a_keyed_batch_gets_the_same_seq_every_time_and_others_do_not() -> None:
    key = BatchKey(1, "feed-000042", "digest")
    again = BatchKey(1, "feed-000042", "digest")
    assert keyed_sequence(key, 3) == keyed_sequence(again, 3)
    values = keyed_sequence(key, 3)
    assert values == sorted(values) and all(value < 0 for value in values)
    assert keyed_sequence(BatchKey(2, "feed-000042", "digest"), 3) != values
    assert keyed_sequence(BatchKey(1, "feed-000043", "digest"), 3) != values


async def test_a_retried_keyed_batch_sends_the_very_same_rows(
    store: TDengineTimeSeriesStore, server: FakeServer
) -> None:
    key = BatchKey(7, "b-1", "d")
    batch = TickBatch([tick(0), tick(0, last="2")], key)
    assert await store.write_batches([batch]) == [BatchOutcome.STORED]
    assert await store.write_batches([TickBatch(list(batch.ticks), key)]) == [BatchOutcome.STORED]
    first, second = server.inserts()
    assert first == second  # same (ts, seq) keys: TDengine overwrites, nothing doubles


async def test_a_keyed_batch_too_big_for_its_seq_range_is_refused_whole(
    store: TDengineTimeSeriesStore, server: FakeServer
) -> None:
    huge = TickBatch([tick(0)] * ((1 << KEYED_INDEX_BITS) + 1), BatchKey(1, "b", "d"))
    with pytest.raises(TimeSeriesWriteError, match="at most 1048576 ticks"):
        await store.write_batches([huge])
    assert not server.inserts()


async def test_a_batch_resent_after_an_ambiguous_failure_keeps_its_seq(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await TDengineTimeSeriesStore.open(
        "taos://localhost/market", retry_backoff=0, connect=server.connect
    )
    original = FakeConnection.execute
    attempts: list[str] = []

    def lands_but_times_out_once(self: FakeConnection, statement: str) -> int:
        if statement.startswith("INSERT"):
            attempts.append(statement)
            if len(attempts) == 1:
                original(self, statement)  # it landed, but the answer was lost
                raise TDengineError("query timeout", 0x0019)
        return original(self, statement)

    monkeypatch.setattr(FakeConnection, "execute", lands_but_times_out_once)
    await store.write_ticks([tick(0), tick(0, last="2")])
    await store.close()
    assert len(attempts) == 2 and attempts[0] == attempts[1]


async def test_invalid_values_fail_the_whole_batch_before_sending(
    store: TDengineTimeSeriesStore, server: FakeServer
) -> None:
    with pytest.raises(TimeSeriesWriteError, match="decimal places"):
        await store.write_ticks([tick(0), tick(1, last="1.123456789")])
    with pytest.raises(TimeSeriesWriteError, match="naive"):
        await store.write_ticks([Tick("A", datetime(2024, 1, 1), *(Decimal(1),) * 4)])
    assert server.inserts() == []


async def test_rejected_batch_is_reported_not_buffered(
    store: TDengineTimeSeriesStore, server: FakeServer
) -> None:
    server.failure = TDengineError("syntax error", SYNTAX_ERROR)
    with pytest.raises(TimeSeriesWriteError, match="rejected"):
        await store.write_ticks([tick(0)])
    assert store.buffered_rows == 0


async def test_outage_is_bridged_by_the_buffer_then_delivered_in_order(
    store: TDengineTimeSeriesStore, server: FakeServer
) -> None:
    server.failure = TDengineError("Unable to establish connection", NETWORK_DOWN)
    await store.write_ticks([tick(0), tick(1)])
    await store.write_ticks([tick(2), tick(3), tick(4)])
    assert store.buffered_rows == 5
    with pytest.raises(TimeSeriesWriteError, match="TDengine unavailable; buffer full"):
        await store.write_ticks([tick(5)])

    server.failure = None
    for _ in range(200):
        if store.buffered_rows == 0:
            break
        await asyncio.sleep(0.01)
    assert store.buffered_rows == 0
    delivered = server.inserts()
    assert len(delivered) == 2
    assert "(1709544600000000" in delivered[0]
    assert "(1709544602000000" in delivered[1]

    await store.write_ticks([tick(6)])  # straight through again
    assert len(server.inserts()) == 3


async def test_writes_queue_behind_buffered_ones_even_once_the_server_is_back(
    store: TDengineTimeSeriesStore, server: FakeServer
) -> None:
    server.failure = TDengineError("timeout", 0x0019)
    await store.write_ticks([tick(0)])
    server.failure = None
    await store.write_ticks([tick(1)])
    await store.close()
    first, second = server.inserts()
    assert "(1709544600000000" in first
    assert "(1709544601000000" in second


async def test_without_a_buffer_outages_fail_fast(server: FakeServer) -> None:
    store = await TDengineTimeSeriesStore.open(
        "taos://localhost/market", buffer_max_rows=0, retry_backoff=0, connect=server.connect
    )
    server.failure = TDengineError("broken link", 0x0018)
    with pytest.raises(TimeSeriesWriteError, match="TDengine unavailable"):
        await store.write_ticks([tick(0)])
    server.failure = None
    await store.close()
    with pytest.raises(TimeSeriesWriteError, match="closed"):
        await store.write_ticks([tick(0)])


async def test_a_transient_error_is_retried_and_the_broken_connection_dropped(
    store: TDengineTimeSeriesStore, server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0
    original = FakeConnection.execute

    def flaky(self: FakeConnection, statement: str) -> int:
        nonlocal calls
        calls += 1
        if calls == 1 and statement.startswith("INSERT"):
            raise TDengineError("broken link", 0x0018)
        return original(self, statement)

    monkeypatch.setattr(FakeConnection, "execute", flaky)
    await store.write_ticks([tick(0)])
    assert len(server.inserts()) == 1
    assert store.buffered_rows == 0
    assert server.closed == 1  # the broken connection was dropped, not reused


async def test_reads_decode_exact_values_in_ascending_order(
    store: TDengineTimeSeriesStore, server: FakeServer
) -> None:
    us = encode_time(T0, Precision.MICROSECONDS)
    statements: list[str] = []

    def answer(statement: str) -> list[Row]:
        statements.append(statement)
        if "INTERVAL" in statement:
            return [(us + 60_000_000, 2, 3, 1, 2, 700_000_000, 2), (us, 1, 1, 1, 1, 50, 1)]
        if "GROUP BY" in statement:
            return [("A", us, 150_000_000, 149_999_999, 150_000_001, 1)]
        return [(us + 1, 12_345_678_900, 1, 2, 3), (us, 1, 1, 1, 1)]

    server.answer = answer
    ticks = await store.ticks("A", None, T0 + timedelta(hours=1), limit=2)
    assert "ORDER BY ts DESC LIMIT 2" in statements[-1]
    assert [t.time for t in ticks] == [T0, T0 + timedelta(microseconds=1)]
    assert ticks[1].last == Decimal("123.456789")

    bars = await store.klines("A", KlineInterval.MINUTE_1, None, None, limit=2)
    assert [b.time for b in bars] == [T0, T0 + timedelta(minutes=1)]
    assert bars[1] == Bar(
        "A",
        T0 + timedelta(minutes=1),
        Decimal("0.00000002"),
        Decimal("0.00000003"),
        Decimal("0.00000001"),
        Decimal("0.00000002"),
        Decimal(7),
        2,
    )

    latest = await store.latest_ticks(["A", "A", "UNKNOWN"])
    assert list(latest) == ["A"]
    assert latest["A"].bid == Decimal("1.49999999")


async def test_kline_range_covers_whole_bars_from_start(
    store: TDengineTimeSeriesStore, server: FakeServer
) -> None:
    statements: list[str] = []

    def record(statement: str) -> list[Row]:
        statements.append(statement)
        return []

    server.answer = record
    start = T0 + timedelta(seconds=30)
    await store.klines("A", KlineInterval.MINUTE_5, start, T0 + timedelta(minutes=7), 10)
    lo = encode_time(T0 + timedelta(minutes=5), Precision.MICROSECONDS)
    hi = encode_time(T0 + timedelta(minutes=10), Precision.MICROSECONDS)
    assert f"ts >= {lo} AND ts < {hi} INTERVAL(5m) ORDER BY _wstart ASC LIMIT 10" in statements[0]


async def test_unknown_or_impossible_reads_are_empty(
    store: TDengineTimeSeriesStore, server: FakeServer
) -> None:
    assert await store.ticks("NOPE", None, None, 10) == []
    assert await store.ticks("X" * 40, None, None, 10) == []
    assert await store.ticks("A", T0, T0, 10) == []
    assert await store.latest_ticks([]) == {}
    with pytest.raises(ValueError, match="1d"):
        await store.klines("A", KlineInterval.DAY_1, None, None, 10)


async def test_a_slow_query_does_not_block_the_event_loop(
    store: TDengineTimeSeriesStore, server: FakeServer
) -> None:
    release = threading.Event()
    loop_was_free = False

    def slow(statement: str) -> list[Row]:
        release.wait(timeout=10)
        return []

    server.answer = slow
    query = asyncio.create_task(store.ticks("A", None, None, 1))
    await asyncio.sleep(0.01)  # the event loop keeps running while the query is blocked
    loop_was_free = not query.done()
    release.set()
    assert await query == []
    assert loop_was_free


async def test_minute_bars_are_stored_in_their_own_super_table(
    store: TDengineTimeSeriesStore, server: FakeServer
) -> None:
    bar = Bar("600519.SH", T0, *(Decimal("1.25"),) * 4, Decimal(10), 3)
    await store.write_minute_bars([bar])
    [statement] = server.inserts()
    assert "USING market.bars_1m (symbol, exchange) TAGS ('600519.SH', 'SSE')" in statement
    assert statement.endswith(
        "(1709544600000000, 125000000, 125000000, 125000000, 125000000, 1000000000, 3)"
    )


async def test_a_split_batch_resumes_after_the_last_statement_that_landed(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await TDengineTimeSeriesStore.open(
        "taos://localhost/market", max_sql_bytes=4096, retry_backoff=0, connect=server.connect
    )
    original = FakeConnection.execute
    inserts_seen = 0

    def second_insert_times_out(self: FakeConnection, statement: str) -> int:
        nonlocal inserts_seen
        if statement.startswith("INSERT"):
            inserts_seen += 1
            if inserts_seen == 2:
                raise TDengineError("query timeout", 0x0019)
        return original(self, statement)

    monkeypatch.setattr(FakeConnection, "execute", second_insert_times_out)
    await store.write_ticks([tick(n) for n in range(200)])
    await store.close()
    delivered = server.inserts()
    assert len(delivered) > 2
    assert len(set(delivered)) == len(delivered)  # nothing re-sent after it had landed
    rows = [row for statement in delivered for row in re.findall(r"\((\d+), \d+", statement)]
    assert len(rows) == 200


# --- connector panics and a flusher that died ---------------------------------------------


class PanicException(BaseException):
    """Stands in for ``pyo3_runtime.PanicException``: a BaseException, not a ``taosws.Error``."""


class ConnectorError(Exception):
    pass


def test_a_websocket_connector_panic_becomes_a_transient_error() -> None:
    class Panicking:
        def query(self, statement: str) -> list[Row]:
            raise PanicException("called `Option::unwrap()` on a `None` value")

        def execute(self, statement: str) -> int:
            raise ConnectorError("[0x2600] syntax error")

        def close(self) -> None: ...

    module = SimpleNamespace(Error=ConnectorError, connect=lambda **_: Panicking())
    connection = _WebSocketConnection(module, parse_url("taosws://localhost/market"))
    with pytest.raises(TDengineError, match="panicked") as panicked:
        connection.query("SELECT 1")
    assert panicked.value.transient
    with pytest.raises(TDengineError) as rejected:
        connection.execute("INSERT")
    assert rejected.value.code == SYNTAX_ERROR
    assert not rejected.value.transient


def test_other_base_exceptions_pass_through_the_websocket_connection() -> None:
    def interrupted(**_: object) -> object:
        raise KeyboardInterrupt

    module = SimpleNamespace(Error=ConnectorError, connect=interrupted)
    with pytest.raises(KeyboardInterrupt):
        _WebSocketConnection(module, parse_url("taosws://localhost/market"))


async def test_a_flusher_ended_by_a_base_exception_is_replaced(
    store: TDengineTimeSeriesStore, server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.failure = TDengineError("Unable to establish connection", NETWORK_DOWN)
    await store.write_ticks([tick(0)])
    assert store.buffered_rows == 1

    original = FakeConnection.execute

    def panics(self: FakeConnection, statement: str) -> int:
        raise PanicException("connector bug")

    monkeypatch.setattr(FakeConnection, "execute", panics)
    server.failure = None
    flusher = store._flusher
    assert flusher is not None
    await asyncio.wait_for(asyncio.wait([flusher]), timeout=5)
    assert isinstance(flusher.exception(), PanicException)  # the deliverer is gone

    monkeypatch.setattr(FakeConnection, "execute", original)
    await store.write_ticks([tick(1)])  # queues behind tick(0) and restarts delivery
    for _ in range(200):
        if store.buffered_rows == 0:
            break
        await asyncio.sleep(0.01)
    assert store.buffered_rows == 0
    first, second = server.inserts()
    assert "(1709544600000000" in first
    assert "(1709544601000000" in second
