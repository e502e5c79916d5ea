"""The ``quantgraph`` command line."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="quantgraph", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the GraphQL server")
    serve.add_argument("--host", help="listen address (default: QUANTGRAPH_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default: QUANTGRAPH_PORT or 8000)")
    serve.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    commands.add_parser("migrate", help="bring the database schema to the latest migration")
    commands.add_parser("seed", help="create demo symbols, history and the demo user if empty")
    import_ticks = commands.add_parser(
        "import-ticks", help="import historical ticks from CSV (symbol,time,last,bid,ask,volume)"
    )
    import_ticks.add_argument("file", type=Path, help="CSV file with a header row")
    create_user = commands.add_parser("create-user", help="create a user with a role")
    create_user.add_argument("username")
    create_user.add_argument(
        "--role", default="TRADER", choices=["VIEWER", "TRADER", "FEED", "ADMIN"]
    )
    create_user.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    export = commands.add_parser("export-schema", help="print the GraphQL schema (SDL)")
    export.add_argument("--output", type=Path, help="write to this file instead of stdout")
    args = parser.parse_args(argv)

    if args.command == "serve":
        return _serve(args.host, args.port, args.workers)
    if args.command == "migrate":
        return asyncio.run(_migrate())
    if args.command == "seed":
        return asyncio.run(_seed())
    if args.command == "import-ticks":
        return asyncio.run(_import_ticks(args.file))
    if args.command == "create-user":
        password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass()
        return asyncio.run(_create_user(args.username, password, args.role))
    if args.command == "export-schema":
        return _export_schema(args.output)
    parser.error(f"unknown command {args.command}")
    return 2


def _serve(host: str | None, port: int | None, workers: int) -> int:
    import uvicorn

    from graphql_api.serving import run
    from graphql_api.settings import Settings

    settings = Settings()
    run(
        uvicorn.Config(
            "graphql_api.app:create_app",
            factory=True,
            host=host or settings.host,
            port=port if port is not None else settings.port,
            workers=workers,
            log_level=settings.log_level.lower(),
            ws="websockets-sansio",
        )
    )
    return 0


async def _migrate() -> int:
    from graphql_api.settings import Settings
    from storage.engine import create_engine
    from storage.migrate import upgrade_to_head

    engine = create_engine(Settings().database_url)
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()
    print("database is at the latest migration")
    return 0


async def _seed() -> int:
    from graphql_api.demo_data import seed_demo_data
    from graphql_api.settings import Settings
    from storage.engine import create_engine, create_session_factory
    from storage.migrate import upgrade_to_head

    settings = Settings()
    engine = create_engine(settings.database_url)
    try:
        await upgrade_to_head(engine)
        async with create_session_factory(engine)() as session:
            seeded = await seed_demo_data(
                session,
                demo_username=settings.demo_username,
                demo_password=settings.demo_password,
                start_cash=settings.demo_start_cash,
            )
            await session.commit()
    finally:
        await engine.dispose()
    print("seeded demo data" if seeded else "database already has symbols; nothing seeded")
    return 0


async def _import_ticks(path: Path) -> int:
    from tqdm import tqdm

    from graphql_api.runtime import open_storage
    from graphql_api.tick_import import CsvFormatError, import_ticks

    total = max(0, sum(1 for _ in path.open(encoding="utf-8")) - 1)
    async with open_storage() as (catalog, store):
        with (
            path.open(encoding="utf-8", newline="") as rows,
            tqdm(total=total, unit="rows", desc=f"importing {path.name}") as bar,
        ):
            try:
                summary = await import_ticks(rows, catalog, store, progress=bar.update)
            except CsvFormatError as error:
                print(f"error: {path}: {error}", file=sys.stderr)
                return 2
    print(f"rows read {summary.read}, written {summary.written}, rejected {summary.rejected}")
    for reason, count in summary.reasons.most_common():
        print(f"  rejected {count}: {reason}")
    for example in summary.examples:
        print(f"  e.g. {example}")
    return 0 if summary.rejected == 0 else 1


async def _create_user(username: str, password: str, role: str) -> int:
    from graphql_api.auth import Role
    from graphql_api.runtime import open_admin_services

    async with open_admin_services() as auth:
        user, errors = await auth.register(username, password, Role(role))
    if user is None:
        for error in errors:
            print(f"error: {error.field}: {error.message}", file=sys.stderr)
        return 1
    print(f"created {role} user {username} (id {user.id})")
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
