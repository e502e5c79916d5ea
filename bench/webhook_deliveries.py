"""Webhook deliveries per second: the dispatcher draining a backlog to a local receiver.

A fresh SQLite database (migrated, demo data), one webhook pointing at a
uvicorn receiver on 127.0.0.1 in the same process (it answers 204 at once),
and ``--deliveries`` PENDING deliveries inserted directly. It times
``WebhookDispatcher.deliver_due`` passes (16 attempts in flight, 100 per pass,
each signed, address-checked, POSTed and recorded) until none is left. The
receiver shares the process and its core with the dispatcher, so this is a
floor for one dispatcher process.

    PYTHONPATH=. .venv/bin/python -m bench.webhook_deliveries

Writes bench/results/webhook_deliveries.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import uvicorn
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from graphql_api.platform.settings import Settings
from graphql_api.server.runtime import open_services, webhook_dispatcher
from graphql_api.webhooks.registry import DeliveryStatus, WebhookEvent
from storage import models
from tests.support.servers import free_port

RESULTS = Path(__file__).parent / "results" / "webhook_deliveries.json"
PAYLOAD = json.dumps({"event": "ALERT_FIRED", "alertFiring": {"id": "1", "price": "100000"}})


async def accept(request: Request) -> Response:
    await request.body()
    return Response(status_code=204)


async def main(count: int) -> dict[str, object]:
    port = free_port()
    receiver = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=[Route("/hook", accept, methods=["POST"])]),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    serving = asyncio.create_task(receiver.serve())
    while not receiver.started:
        if serving.done():
            serving.result()
            raise RuntimeError("the receiver did not start")
        await asyncio.sleep(0.02)
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            DATABASE_URL=f"sqlite+aiosqlite:///{folder}/bench.db",
            MARKET_FEED="none",
            MATCHER_ENABLED=False,
            STRATEGY_ENGINE_ENABLED=False,
            ALERT_ENGINE_ENABLED=False,
            WEBHOOKS_ENABLED=False,
            WEBHOOK_ALLOW_PRIVATE_ADDRESSES=True,
            LOG_LEVEL="warning",
        )
        async with open_services(settings) as services:
            registered = await services.webhooks.register(
                services.demo_user_id, f"http://127.0.0.1:{port}/hook", [WebhookEvent.ALERT_FIRED]
            )
            assert registered.webhook is not None, registered.errors
            now = datetime.now(UTC)
            async with services.sessions() as session:
                session.add_all(
                    models.WebhookDelivery(
                        webhook_id=registered.webhook.id,
                        event=WebhookEvent.ALERT_FIRED.value,
                        event_key=f"bench:{index}",
                        payload=PAYLOAD,
                        status=DeliveryStatus.PENDING.value,
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                    )
                    for index in range(count)
                )
                await session.commit()
            dispatcher = webhook_dispatcher(services)
            async with dispatcher.client() as client:
                started = time.perf_counter()
                while await dispatcher.deliver_due(client):
                    pass
                elapsed = time.perf_counter() - started
            async with services.sessions() as session:
                delivered = await session.scalar(
                    select(func.count())
                    .select_from(models.WebhookDelivery)
                    .where(models.WebhookDelivery.status == DeliveryStatus.DELIVERED.value)
                )
    receiver.should_exit = True
    await serving
    assert delivered == count, f"{delivered} of {count} delivered"
    return {
        "command": "PYTHONPATH=. python -m bench.webhook_deliveries",
        "database": "sqlite",
        "deliveries": count,
        "seconds": round(elapsed, 3),
        "deliveries_per_second": round(count / elapsed, 1),
        "in_flight": 16,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=2000)
    result = asyncio.run(main(parser.parse_args().deliveries))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
