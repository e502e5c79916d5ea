"""The ``quantgraph`` command line: run the server and administer its database.

Heavy modules are imported inside each command, so ``--help`` and the quick
commands start fast. The database is ``DATABASE_URL`` (see the README).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from graphql_api.platform.number_text import NumberTextError, parse_ascii_int

if TYPE_CHECKING:
    from graphql_api.market.imports.bars import ImportReport
    from graphql_api.market.imports.summary import ImportSummary
    from graphql_api.market.symbols import SymbolCatalog
    from graphql_api.market.value_ranges import TimeWindow
    from graphql_api.platform.settings import Settings
    from storage.engine import SessionFactory

ROLES = ("VIEWER", "TRADER", "FEED", "ADMIN")
DEFAULT_BATCH_SIZE = 5000
DEFAULT_SYMBOL_BATCH_SIZE = 500

EXIT_STATUS = """\
exit status: 0 every row was written, 1 some rows were rejected,
2 the file (or symbol) cannot be imported at all."""

BARS_FORMAT = f"""\
CSV format: a header, then one row per trading day, exactly these columns in
this order (header case and spaces do not matter, blank lines are skipped):

  date,open,high,low,close,volume
  2024-01-02,1520.00,1535.50,1510.00,1530.00,12300

  date                    the day, YYYY-MM-DD; at most once per file; not in the
                          future nor older than MAX_BAR_AGE_YEARS (default 100)
  open, high, low, close  positive prices on the symbol's tick grid, with
                          high >= max(open, close) and low <= min(open, close)
  volume                  a number >= 0

Numbers have at most 18 digits before the point and 10 after (more would be
rounded by the database, so they are refused). A leading UTF-8 BOM is ignored.

Rows are upserted by (symbol, day): re-importing a day replaces it. Without
--all-or-nothing valid rows are written (committed every --batch-size rows)
and bad ones reported; with it, one bad row means nothing is written.

{EXIT_STATUS}"""

TICKS_FORMAT = f"""\
CSV format: a header naming the columns (any order, extra columns ignored),
then one tick per row:

  symbol,time,last,bid,ask,volume
  600519.SH,2026-03-02T01:30:00.250Z,1500.00,1499.99,1500.01,100

  symbol    a known symbol code (required)
  time      ISO 8601 with a UTC offset, Z or +08:00; not in the future nor
            older than MAX_TICK_AGE_YEARS (default 30) (required)
  last      a positive price on the symbol's tick grid (required)
  bid, ask  optional, default last; on the tick grid, bid <= ask
  volume    optional, default 0; >= 0

Numbers have at most 18 digits before the point and 10 after (more would be
rounded by the database, so they are refused). A leading UTF-8 BOM is ignored.

Rows are checked like ingestTicks and written --batch-size at a time straight
to the time-series store (not replayed to live subscribers); bad rows are
reported. Rows written stay written: the store has no transactions.

{EXIT_STATUS}"""


SYMBOLS_FORMAT = f"""\
CSV format: a header, then one symbol per row, exactly these columns in this
order (header case and spaces do not matter, blank lines are skipped):

  code,name,exchange,currency,tick_size,lot_size,session_timezone,session_hours,off_session_orders
  AAPL,Apple Inc.,NASDAQ,USD,0.01,1,America/New_York,MON-FRI 09:30-16:00,REFUSE

  code          1 to 32 letters, digits, '.', '-' or '_' (stored upper case);
                at most once per file
  name          1 to 128 characters (quote it if it has a comma)
  exchange      1 to 16 letters, digits or '_' (stored upper case)
  currency      the quote currency, 3 to 8 letters or digits (USD, USDT); a new
                one opens a balance for every account (START_CASH_BY_CURRENCY)
  tick_size     price step, a positive number; lot_size: quantity step, likewise
  session_timezone
                IANA time zone of the trading hours (Asia/Shanghai, UTC)
  session_hours weekly windows in that zone: days then HH:MM-HH:MM spans, day
                groups separated by ';' (MON-FRI 09:30-11:30 13:00-15:00;
                MON-SUN 00:00-24:00 for around the clock)
  off_session_orders
                REFUSE (rejected with MARKET_CLOSED) or REST (wait for the open)
                for orders placed outside those hours; empty means REFUSE

Rows follow the rules of the createSymbol mutation and are audited as done by
cli:<your login name>; running servers pick the new symbols up at once. A row
identical to a listed symbol counts as unchanged (re-running is safe); a listed
symbol with other values is rejected (use updateSymbol). Without
--all-or-nothing valid rows are written (committed every --batch-size rows) and
bad ones reported; with it, one bad row means nothing is written.

{EXIT_STATUS}"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="quantgraph",
        description="Run the quantgraph GraphQL server and administer its database (DATABASE_URL).",
        epilog="Run 'quantgraph COMMAND --help' for a command's options.",
        formatter_class=_CommandListFormatter,
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", title="commands"
    )
    serve = commands.add_parser(
        "serve", help="run the GraphQL server", description="Run the GraphQL server."
    )
    serve.add_argument("--host", help="listen address (default: QUANTGRAPH_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default: QUANTGRAPH_PORT or 8000)")
    serve.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    commands.add_parser(
        "migrate",
        help="bring the database schema to the latest migration",
        description="Bring the database schema to the latest migration (Alembic upgrade head).",
    )
    commands.add_parser(
        "seed",
        help="create demo symbols, history and the demo user if empty",
        description="Create demo symbols, daily history and the demo user in an empty database.",
    )
    import_bars = commands.add_parser(
        "import-bars",
        help="import daily bars of one symbol from CSV",
        description="Import daily bars of one symbol from a CSV file.",
        epilog=BARS_FORMAT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    import_bars.add_argument("file", metavar="FILE", help="CSV file, or - for standard input")
    import_bars.add_argument(
        "--symbol", required=True, help="the symbol the bars belong to, e.g. 600519.SH"
    )
    import_bars.add_argument(
        "--all-or-nothing",
        action="store_true",
        help="write nothing when any row is rejected (default: write the valid rows)",
    )
    _add_import_options(import_bars)
    backfill = commands.add_parser(
        "backfill-bars",
        help="fetch daily bars of one symbol from a market-data source",
        description=(
            "Fetch a symbol's daily bars for a date range from a market-data source that "
            "keeps history and import them like import-bars: binance (the klines REST "
            "endpoint at BINANCE_REST_URL) or replay (--file, a daily-bar CSV; the rows "
            "in the range). Progress goes to stderr, the import summary to stdout."
        ),
        epilog=BARS_FORMAT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    backfill.add_argument(
        "--source",
        required=True,
        choices=("binance", "replay", "simulated"),
        help="a source that keeps history: binance or replay (simulated has none)",
    )
    backfill.add_argument("--symbol", required=True, help="our symbol code, e.g. BTCUSDT")
    backfill.add_argument("--from", dest="start", required=True, type=_day, help="YYYY-MM-DD")
    backfill.add_argument("--to", dest="end", required=True, type=_day, help="YYYY-MM-DD")
    backfill.add_argument("--file", help="replay: the daily-bar CSV file")
    backfill.add_argument(
        "--all-or-nothing",
        action="store_true",
        help="write nothing when any row is rejected (default: write the valid rows)",
    )
    _add_import_options(backfill)
    import_symbols = commands.add_parser(
        "import-symbols",
        help="list symbols from CSV",
        description="List new symbols from a CSV file (as the createSymbol mutation does).",
        epilog=SYMBOLS_FORMAT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    import_symbols.add_argument("file", metavar="FILE", help="CSV file, or - for standard input")
    import_symbols.add_argument(
        "--all-or-nothing",
        action="store_true",
        help="write nothing when any row is rejected (default: write the valid rows)",
    )
    _add_import_options(import_symbols, default_batch_size=DEFAULT_SYMBOL_BATCH_SIZE)
    import_ticks = commands.add_parser(
        "import-ticks",
        help="import historical ticks from CSV",
        description="Import historical ticks of any symbols from a CSV file.",
        epilog=TICKS_FORMAT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    import_ticks.add_argument("file", metavar="FILE", help="CSV file, or - for standard input")
    _add_import_options(import_ticks)
    rebuild = commands.add_parser(
        "rebuild-bars",
        help="rebuild the minute bars klines read from the stored ticks",
        description=(
            "Make the one-minute bars that klines read the fold of the stored ticks again: "
            "after ticks were written around the server (a bulk COPY, hand-made SQL) or "
            "deleted by hand. One symbol and one UTC day at a time, each day in its own "
            "transaction; safe while servers write ticks. Not for TDengine, which "
            "aggregates when it reads."
        ),
    )
    rebuild.add_argument(
        "--symbol",
        action="append",
        dest="symbols",
        metavar="CODE",
        help="a symbol (repeat for several; default: every symbol with ticks or bars)",
    )
    rebuild.add_argument(
        "--from",
        dest="start",
        type=_moment,
        help="YYYY-MM-DD (UTC) or an ISO 8601 time with an offset (default: the earliest)",
    )
    rebuild.add_argument(
        "--to", dest="end", type=_moment, help="the same, exclusive (default: the latest)"
    )
    rebuild.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        help="report each symbol on stderr (default: only when stderr is a terminal)",
    )
    create_user = commands.add_parser(
        "create-user",
        help="create a user with a role",
        description="Create a user; the password is prompted for unless --password-stdin.",
    )
    create_user.add_argument("username")
    create_user.add_argument(
        "--role", default="TRADER", choices=ROLES, help="what the user may do (default TRADER)"
    )
    create_user.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    set_role = commands.add_parser(
        "set-role",
        help="change a user's role",
        description="Change a user's role. Running servers apply it at once: the user's "
        "open WebSockets close (4401) and the next request uses the new role.",
    )
    set_role.add_argument("username")
    set_role.add_argument("role", choices=ROLES)
    remove_user = commands.add_parser(
        "remove-user",
        help="delete a user and everything they own",
        description="Delete a user with their orders, trades, positions, cash, strategies "
        "and sessions. Their tokens stop working on every running server.",
    )
    remove_user.add_argument("username")
    export = commands.add_parser(
        "export-schema",
        help="print the GraphQL schema (SDL)",
        description="Print the GraphQL schema (SDL), as checked in as schema.graphql.",
    )
    export.add_argument("--output", type=Path, help="write to this file instead of stdout")
    args = parser.parse_args(argv)

    if args.command == "serve":
        return _serve(args.host, args.port, args.workers)
    if args.command == "migrate":
        return asyncio.run(_migrate())
    if args.command == "seed":
        return asyncio.run(_seed())
    if args.command == "import-bars":
        return asyncio.run(
            _import_bars(
                args.file, args.symbol, args.all_or_nothing, args.batch_size, _show(args.progress)
            )
        )
    if args.command == "backfill-bars":
        if args.end < args.start:
            parser.error("--to is before --from")
        if args.file is not None and args.source != "replay":
            parser.error("--file is for --source replay")
        return asyncio.run(_backfill_bars(args))
    if args.command == "import-symbols":
        return asyncio.run(
            _import_symbols(args.file, args.all_or_nothing, args.batch_size, _show(args.progress))
        )
    if args.command == "import-ticks":
        return asyncio.run(_import_ticks(args.file, args.batch_size, _show(args.progress)))
    if args.command == "rebuild-bars":
        if args.start is not None and args.end is not None and args.end <= args.start:
            parser.error("--to is not after --from")
        return asyncio.run(_rebuild_bars(args.symbols, args.start, args.end, _show(args.progress)))
    if args.command == "create-user":
        password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass()
        return asyncio.run(_create_user(args.username, password, args.role))
    if args.command == "set-role":
        return asyncio.run(_set_role(args.username, args.role))
    if args.command == "remove-user":
        return asyncio.run(_remove_user(args.username))
    if args.command == "export-schema":
        return _export_schema(args.output)
    parser.error(f"unknown command {args.command}")
    return 2


class _CommandListFormatter(argparse.HelpFormatter):
    """Keeps each command's description on its line in ``quantgraph --help``.

    argparse aligns help text without the commands' extra indent, so long
    names (``export-schema``) would push their description onto the next line.
    """

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        for subaction in self._iter_indented_subactions(action):
            length = len(self._format_action_invocation(subaction)) + self._current_indent
            self._action_max_length = max(self._action_max_length, length)


def _add_import_options(
    command: argparse.ArgumentParser, *, default_batch_size: int = DEFAULT_BATCH_SIZE
) -> None:
    command.add_argument(
        "--batch-size",
        type=_positive_int,
        default=default_batch_size,
        metavar="N",
        help=f"rows per database write (default {default_batch_size})",
    )
    command.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        help="show a progress bar on stderr (default: only when stderr is a terminal)",
    )


def _positive_int(text: str) -> int:
    try:
        value = parse_ascii_int(text, max_digits=18)
    except NumberTextError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _show(progress: bool | None) -> bool:
    """Scripts and logs get clean output; people at a terminal get a bar."""
    return sys.stderr.isatty() if progress is None else progress


def _serve(host: str | None, port: int | None, workers: int) -> int:
    import uvicorn

    from graphql_api.platform.settings import Settings
    from graphql_api.server.http_protocol import CoalescingHttpToolsProtocol
    from graphql_api.server.serving import run
    from graphql_api.server.websocket.direct import DirectWebSocketProtocol

    settings = Settings()
    if workers > 1 and settings.broadcast_url.startswith("memory"):
        print(
            f"error: --workers {workers} needs BROADCAST_URL (Redis, e.g. redis://localhost:6379):"
            " each worker is its own process, and the in-process bus would not carry one"
            " worker's ticks and order updates to the others' subscribers",
            file=sys.stderr,
        )
        return 2
    run(
        uvicorn.Config(
            "graphql_api.server.app:create_app",
            factory=True,
            host=host or settings.host,
            port=port if port is not None else settings.port,
            workers=workers,
            log_level=settings.log_level.lower(),
            # The app writes the access log (ACCESS_LOG: structured, with the request
            # id, the operation and the user); uvicorn's own would be a second line per
            # request, unstructured.
            access_log=False,
            # A connection's writes leave once per loop turn (head and body together).
            http=CoalescingHttpToolsProtocol,
            ws=DirectWebSocketProtocol,
            # Frames over the HTTP body limit are refused by uvicorn (close 1009).
            ws_max_size=settings.max_body_bytes,
            ws_per_message_deflate=settings.ws_per_message_deflate,
            timeout_graceful_shutdown=int(settings.shutdown_timeout_seconds),
        ),
        gc_gen0_threshold=settings.gc_gen0_threshold,
    )
    return 0


async def _migrate() -> int:
    from graphql_api.platform.settings import Settings
    from graphql_api.server.database import open_database

    async with open_database(Settings()):
        pass  # opening migrates
    print("database is at the latest migration")
    return 0


async def _seed() -> int:
    from graphql_api.platform.settings import Settings
    from graphql_api.server.database import open_database
    from graphql_api.server.demo_data import seed_demo_data

    settings = Settings()
    async with open_database(settings) as database, database.sessions() as session:
        seeded = await seed_demo_data(
            session,
            demo_username=settings.demo_username,
            demo_password=settings.demo_password,
            start_cash=settings.start_cash,
        )
        await session.commit()
    print("seeded demo data" if seeded else "database already has symbols; nothing seeded")
    return 0


async def _import_ticks(file: str, batch_size: int, progress: bool) -> int:
    from graphql_api.market.imports.ticks import CsvFormatError, import_ticks
    from graphql_api.platform.settings import Settings
    from graphql_api.server.runtime import open_storage

    source = _open_source(file)
    if source is None:
        return 2
    settings = Settings()
    window = _window(settings.max_tick_age_years, settings.max_tick_future_seconds)
    with source as data:
        async with open_storage(settings) as (catalog, store):
            with _progress_bar(file, progress) as advance:
                try:
                    summary = await import_ticks(
                        _lines(data, advance),
                        catalog,
                        store,
                        window=window,
                        batch_size=batch_size,
                    )
                except CsvFormatError as error:
                    print(f"error: {file}: {error}", file=sys.stderr)
                    return 2
    return _report(summary)


async def _import_bars(
    file: str, symbol: str, all_or_nothing: bool, batch_size: int, progress: bool
) -> int:
    from graphql_api.market.imports.bars import import_bar_lines
    from graphql_api.platform.settings import Settings

    source = _open_source(file)
    if source is None:
        return 2
    settings = Settings()
    window = _window(settings.max_bar_age_years, settings.max_tick_future_seconds)
    with source as data:
        async with _open_catalog(settings) as (catalog, sessions):
            with _progress_bar(file, progress) as advance:
                report = await import_bar_lines(
                    catalog,
                    sessions,
                    symbol,
                    _lines(data, advance),
                    window=window,
                    all_or_nothing=all_or_nothing,
                    batch_size=batch_size,
                )
    if report.errors and report.rows_read == 0:
        for error in report.errors:
            print(f"error: {file}: {error.message}", file=sys.stderr)
        return 2
    return _report(_bar_summary(report, all_or_nothing))


async def _backfill_bars(args: argparse.Namespace) -> int:
    """Through the source's :class:`~graphql_api.market.sources.DailyBarSource` side,
    then the one daily-bar import (same checks, batches, summary and exit status)."""
    import httpx

    from graphql_api.market.imports.bars import import_bar_lines
    from graphql_api.market.sources import SourceConfigError
    from graphql_api.market.sources.binance_klines import RateLimitedError
    from graphql_api.platform.settings import Settings
    from graphql_api.server.market_sources import history_source

    settings = Settings()
    label = f"{args.source} {args.symbol.upper()} {args.start}..{args.end}"
    progress = _show(args.progress)
    total = (args.end - args.start).days + 1
    lines: list[str] = []
    try:
        source = history_source(args.source, settings, Path(args.file) if args.file else None)
        async for chunk in source.daily_bars(args.symbol, args.start, args.end):
            lines.extend(chunk)
            if progress:
                rows = max(len(lines) - 1, 0)
                print(f"{label}: {rows} of at most {total} days fetched", file=sys.stderr)
    except (SourceConfigError, RateLimitedError, OSError) as error:
        print(f"error: {label}: {error}", file=sys.stderr)
        return 2
    except httpx.HTTPError as error:  # unreachable, or it answered an error status
        print(f"error: {label}: source unavailable: {error}", file=sys.stderr)
        return 2
    window = _window(settings.max_bar_age_years, settings.max_tick_future_seconds)
    async with _open_catalog(settings) as (catalog, sessions):
        report = await import_bar_lines(
            catalog,
            sessions,
            args.symbol,
            lines,
            window=window,
            all_or_nothing=args.all_or_nothing,
            batch_size=args.batch_size,
        )
    if report.errors and report.rows_read == 0:
        for problem in report.errors:
            print(f"error: {label}: {problem.message}", file=sys.stderr)
        return 2
    return _report(_bar_summary(report, args.all_or_nothing))


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _moment(text: str) -> datetime:
    """A date (midnight UTC) or a time that says its offset: a bare local time
    would mean different instants on different machines."""
    try:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a date (YYYY-MM-DD) nor an ISO 8601 time"
        ) from None
    if moment.utcoffset() is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no offset (add Z or +08:00)")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        message = f"{text!r} is outside the years 1 to 9999 in UTC"
        raise argparse.ArgumentTypeError(message) from None


async def _rebuild_bars(
    symbols: list[str] | None, start: datetime | None, end: datetime | None, progress: bool
) -> int:
    from graphql_api.market.symbols import SymbolCatalog
    from graphql_api.platform.settings import Settings
    from graphql_api.server.database import open_database
    from storage.timeseries.bar_rebuild import RebuildReport, rebuild_minute_bars, stored_symbols

    settings = Settings()
    if settings.tdengine_url:
        print(
            "error: TDengine aggregates klines when it reads them; there are no minute bars "
            "to rebuild",
            file=sys.stderr,
        )
        return 2

    def report_symbol(symbol: str, report: RebuildReport) -> None:
        print(
            f"{symbol}: done ({report.bars} bars from {report.ticks} ticks so far)",
            file=sys.stderr,
        )

    async with open_database(settings) as database:
        catalog = SymbolCatalog(database.sessions)
        await catalog.load()
        known = await catalog.get_many(symbols or [])
        unknown = [symbol for symbol in symbols or [] if symbol not in known]
        if unknown:
            print(f"error: unknown symbol {', '.join(map(repr, unknown))}", file=sys.stderr)
            return 2
        report = await rebuild_minute_bars(
            database.engine,
            symbols or await stored_symbols(database.engine),
            start,
            end,
            progress=report_symbol if progress else None,
        )
    print(
        f"rebuilt {report.bars} minute bars from {report.ticks} ticks: {report.symbols} "
        f"symbol(s), {report.days} day(s); {report.bars_removed} bar(s) without ticks "
        f"removed, {report.unreadable_ticks} unreadable tick(s) skipped"
    )
    return 0


async def _import_symbols(file: str, all_or_nothing: bool, batch_size: int, progress: bool) -> int:
    from graphql_api.instruments import Actor
    from graphql_api.instruments.symbol_imports import import_symbol_lines
    from graphql_api.market.imports.summary import ImportSummary
    from graphql_api.platform.settings import Settings
    from graphql_api.server.runtime import open_instrument_admin

    source = _open_source(file)
    if source is None:
        return 2
    actor = Actor(None, f"cli:{_operator()}")
    with source as data:
        async with open_instrument_admin(Settings()) as (instruments, sessions):
            with _progress_bar(file, progress) as advance:
                report = await import_symbol_lines(
                    instruments,
                    sessions,
                    _lines(data, advance),
                    actor=actor,
                    all_or_nothing=all_or_nothing,
                    batch_size=batch_size,
                )
    if report.errors and report.rows_read == 0:
        for error in report.errors:
            print(f"error: {file}: {error.message}", file=sys.stderr)
        return 2
    summary = ImportSummary(
        read=report.rows_read, written=report.rows_written, unchanged=report.unchanged
    )
    for row in report.rejected:
        summary.reject(row.line, row.kind, row.reason)
    summary.rolled_back = all_or_nothing and bool(report.rejected) and not report.errors
    if report.errors:
        summary.stopped = "; ".join(error.message for error in report.errors)
    return _report(summary)


def _operator() -> str:
    """Who runs the command, for the audit (the login name; ``unknown`` without one)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _window(max_age_years: int, max_future_seconds: int) -> TimeWindow:
    from graphql_api.market.value_ranges import TimeWindow

    now = datetime.now(UTC)
    return TimeWindow.around(now, max_age_years, timedelta(seconds=max_future_seconds))


def _bar_summary(report: ImportReport, all_or_nothing: bool) -> ImportSummary:
    from graphql_api.market.imports.summary import ImportSummary

    summary = ImportSummary(read=report.rows_read, written=report.rows_written)
    for row in report.rejected:
        summary.reject(row.line, row.kind, row.reason)
    summary.rolled_back = all_or_nothing and bool(report.rejected) and not report.errors
    if report.errors:
        summary.stopped = "; ".join(error.message for error in report.errors)
    return summary


def _report(summary: ImportSummary) -> int:
    sys.stdout.write(summary.render())
    if summary.stopped is not None:
        return 2
    return 0 if summary.rejected == 0 else 1


def _open_source(file: str) -> contextlib.AbstractContextManager[BinaryIO] | None:
    """The CSV as bytes (``-`` is stdin), or None after saying why it cannot be read."""
    if file == "-":
        return contextlib.nullcontext(sys.stdin.buffer)
    try:
        return open(file, "rb")
    except OSError as error:
        print(f"error: cannot read {file}: {error.strerror or error}", file=sys.stderr)
        return None


def _lines(source: BinaryIO, advance: Callable[[int], object]) -> Iterator[str]:
    """Decode line by line, so an undecodable byte is reported on its own line.

    A text wrapper would decode 8 KiB ahead of the CSV reader and fail on an
    earlier line number. The first line may carry the BOM spreadsheets write.
    """
    encoding = "utf-8-sig"
    for raw in source:
        advance(1)
        yield raw.decode(encoding)
        encoding = "utf-8"


@contextlib.contextmanager
def _progress_bar(file: str, enabled: bool) -> Iterator[Callable[[int], object]]:
    """A bar over the file's lines on stderr; open-ended for stdin, whose size is unknown."""
    if not enabled:
        yield _ignore
        return
    from tqdm import tqdm

    total = None if file == "-" else _count_lines(Path(file))
    label = "stdin" if file == "-" else Path(file).name
    with tqdm(
        total=total,
        desc=f"importing {label}",
        unit=" lines",
        file=sys.stderr,
        dynamic_ncols=True,
    ) as bar:
        yield bar.update


def _ignore(_: int) -> None:
    return None


def _count_lines(path: Path) -> int:
    """Counting newlines in 1 MiB chunks costs a fraction of the import it measures."""
    count, last = 0, b"\n"
    with path.open("rb") as data:
        while chunk := data.read(1 << 20):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


@contextlib.asynccontextmanager
async def _open_catalog(
    settings: Settings,
) -> AsyncIterator[tuple[SymbolCatalog, SessionFactory]]:
    """The symbol catalogue and sessions: all a daily-bar import needs (bars live in SQL)."""
    from graphql_api.market.symbols import SymbolCatalog
    from graphql_api.server.database import open_database

    async with open_database(settings) as database:
        catalog = SymbolCatalog(database.sessions)
        await catalog.load()
        yield catalog, database.sessions


async def _create_user(username: str, password: str, role: str) -> int:
    from graphql_api.auth import Role
    from graphql_api.server.runtime import open_admin_services

    async with open_admin_services() as auth:
        user, errors = await auth.register(username, password, Role(role))
    if user is None:
        for error in errors:
            print(f"error: {error.field}: {error.message}", file=sys.stderr)
        return 1
    print(f"created {role} user {username} (id {user.id})")
    return 0


async def _set_role(username: str, role: str) -> int:
    from graphql_api.auth import Role
    from graphql_api.server.runtime import open_admin_services

    async with open_admin_services() as auth:
        user = await auth.set_role(username, Role(role))
    if user is None:
        print(f"error: no user named {username!r}", file=sys.stderr)
        return 1
    print(f"{user.username} (id {user.id}) is now {role}")
    return 0


async def _remove_user(username: str) -> int:
    from graphql_api.server.runtime import open_admin_services

    async with open_admin_services() as auth:
        removed = await auth.remove_user(username)
    if not removed:
        print(f"error: no user named {username!r}", file=sys.stderr)
        return 1
    print(f"removed user {username}")
    return 0


def _export_schema(output: Path | None) -> int:
    from schema import schema

    sdl = schema.as_str() + "\n"
    if output is None:
        sys.stdout.write(sdl)
    else:
        output.write_text(sdl)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
