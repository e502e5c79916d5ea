"""Posting pending webhook deliveries, once per cluster, with retries and a dead letter.

Run :meth:`WebhookDispatcher.run` under ``Leadership(engine, "webhooks")``: one
process posts at a time. Deliveries live in ``webhook_deliveries`` (enqueued in
the transaction that stored their event), so a restarted or newly elected
dispatcher resumes whatever is PENDING.

One attempt POSTs the stored JSON body with the signature headers
(:mod:`.signing`) over a connection that only reaches addresses the URL's host
resolves to *and* that are allowed (:mod:`.transport`, :mod:`.addresses`:
checked at every connection, since DNS answers change), waiting at most
``timeout`` seconds, never following redirects (a redirect could point inside
the network). A 2xx answer makes the delivery DELIVERED. Anything else —
another status, a timeout, a refused connection, a host that does not resolve —
schedules the next attempt ``backoff * 2**(attempts - 1)`` seconds later (at
most ``max_backoff``); after ``max_attempts`` attempts, or at once for an
address that is not allowed, the delivery is DEAD (the dead letter: kept in the
log, never tried again). Every attempt records its status code or error, shown
in the owner's delivery log.

Delivery is at least once: a dispatcher that dies after the endpoint answered
but before recording it leaves the delivery PENDING, and it is posted again
with the same ``X-Quantgraph-Delivery`` id.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy import CursorResult, func, select, update

from graphql_api.platform.activity import Activity
from graphql_api.realtime.channels import WEBHOOKS_CHANNEL
from graphql_api.realtime.hub import Hub
from graphql_api.webhooks.addresses import AddressNotAllowedError, HostNotResolvedError
from graphql_api.webhooks.registry import DeliveryStatus
from graphql_api.webhooks.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, sign
from graphql_api.webhooks.transport import guarded_transport
from storage import models
from storage.engine import SessionFactory

__all__ = ["WebhookDispatcher"]

log = structlog.get_logger(__name__)

MAX_ERROR_LENGTH = 500


@dataclass(frozen=True, slots=True)
class _Due:
    id: int
    event: str
    payload: str
    attempts: int
    url: str
    secret: str


@dataclass(frozen=True, slots=True)
class _Result:
    status_code: int | None
    error: str | None
    final: bool = False  # no retry whatever the attempts (an address not allowed)

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookDispatcher:
    """Parameters:
    sessions: the database holding the deliveries.
    hub: wakes the dispatcher when deliveries are enqueued.
    allow_private: ``WEBHOOK_ALLOW_PRIVATE_ADDRESSES``.
    timeout: seconds an attempt may take.
    max_attempts: attempts before a delivery is DEAD.
    backoff / max_backoff: the first retry delay in seconds, doubling, and its cap.
    poll_interval: longest pause between looks at the table when nothing wakes it
        (a retry due sooner shortens it).
    concurrency: attempts in flight at once.
    batch_size: deliveries read per look.
    activity: counts delivered, dead and failed attempts (for metrics).
    """

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        hub: Hub,
        allow_private: bool,
        timeout: float,
        max_attempts: int,
        backoff: float,
        max_backoff: float,
        poll_interval: float = 5.0,
        concurrency: int = 16,
        batch_size: int = 100,
        activity: Activity | None = None,
    ) -> None:
        self._sessions = sessions
        self._hub = hub
        self._allow_private = allow_private
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._poll_interval = poll_interval
        self._limit = asyncio.Semaphore(concurrency)
        self._batch_size = batch_size
        self._wake = asyncio.Event()
        self._activity = activity if activity is not None else Activity()
        self.attempts = 0

    async def run(self) -> None:
        """Deliver until cancelled (i.e. until leadership ends)."""
        listener = asyncio.create_task(self._listen(), name="webhooks:wake")
        try:
            async with self.client() as client:
                while True:
                    self._wake.clear()
                    try:
                        done = await self.deliver_due(client)
                    except Exception:
                        log.exception("webhook delivery pass failed")
                        done = 0
                    if done < self._batch_size:
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(await self._pause()):
                                await self._wake.wait()
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    def client(self) -> httpx.AsyncClient:
        """The HTTP client attempts go through: connections only to allowed addresses
        (:mod:`.transport`), no redirects, no proxies from the environment."""
        return httpx.AsyncClient(
            transport=guarded_transport(allow_private=self._allow_private),
            follow_redirects=False,
            trust_env=False,
        )

    async def _pause(self) -> float:
        """Seconds until the next retry is due, at most ``poll_interval``."""
        delivery = models.WebhookDelivery
        try:
            async with self._sessions() as session:
                due = await session.scalar(
                    select(func.min(delivery.next_attempt_at)).where(
                        delivery.status == DeliveryStatus.PENDING.value
                    )
                )
        except Exception:
            return self._poll_interval
        if due is None:
            return self._poll_interval
        wait = (due - datetime.now(UTC)).total_seconds()
        return min(max(wait, 0.01), self._poll_interval)

    async def deliver_due(self, client: httpx.AsyncClient) -> int:
        """Attempt every delivery that is due now; how many were attempted."""
        delivery, hook = models.WebhookDelivery, models.Webhook
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(
                        delivery.id,
                        delivery.event,
                        delivery.payload,
                        delivery.attempts,
                        hook.url,
                        hook.secret,
                    )
                    .join(hook, hook.id == delivery.webhook_id)
                    .where(
                        delivery.status == DeliveryStatus.PENDING.value,
                        delivery.next_attempt_at <= datetime.now(UTC),
                    )
                    .order_by(delivery.next_attempt_at, delivery.id)
                    .limit(self._batch_size)
                )
            ).all()
        due = [_Due(*row) for row in rows]
        results = await asyncio.gather(*(self._deliver(client, item) for item in due))
        if due:
            # One transaction for the pass: a commit per delivery would bound the rate
            # by the database's commit latency.
            await self._record(list(zip(due, results, strict=True)))
        return len(due)

    async def _deliver(self, client: httpx.AsyncClient, due: _Due) -> _Result:
        async with self._limit:
            result = await self._attempt(client, due)
        self.attempts += 1
        return result

    async def _attempt(self, client: httpx.AsyncClient, due: _Due) -> _Result:
        body = due.payload.encode()
        headers = {
            "content-type": "application/json",
            "user-agent": "quantgraph-webhooks/1",
            SIGNATURE_HEADER: sign(due.secret, int(time.time()), body),
            DELIVERY_HEADER: str(due.id),
            EVENT_HEADER: due.event,
        }
        try:
            async with asyncio.timeout(self._timeout):
                async with client.stream(
                    "POST", due.url, content=body, headers=headers, timeout=self._timeout
                ) as response:
                    code = response.status_code
        except AddressNotAllowedError as error:
            return _Result(None, str(error), final=True)
        except HostNotResolvedError as error:
            return _Result(None, str(error))
        except (TimeoutError, httpx.TimeoutException):
            return _Result(None, f"timed out after {self._timeout:g} s")
        except httpx.HTTPError as error:
            return _Result(None, f"{type(error).__name__}: {error}"[:MAX_ERROR_LENGTH])
        if 200 <= code < 300:
            return _Result(code, None)
        return _Result(code, f"HTTP {code}")

    async def _record(self, outcomes: list[tuple[_Due, _Result]]) -> None:
        now = datetime.now(UTC)
        delivery = models.WebhookDelivery
        async with self._sessions() as session:
            for due, result in outcomes:
                # Fenced by the attempt count: a stale dispatcher cannot overwrite a newer
                # record.
                changed: CursorResult[Any] = await session.execute(  # type: ignore[assignment]
                    update(delivery)
                    .where(
                        delivery.id == due.id,
                        delivery.status == DeliveryStatus.PENDING.value,
                        delivery.attempts == due.attempts,
                    )
                    .values(**self._values(due, result, now))
                )
                if changed.rowcount == 0:
                    log.info("webhook delivery recorded elsewhere", delivery_id=due.id)
            await session.commit()

    def _values(self, due: _Due, result: _Result, now: datetime) -> dict[str, Any]:
        attempts = due.attempts + 1
        values: dict[str, Any] = {
            "attempts": attempts,
            "last_status_code": result.status_code,
            "last_error": result.error,
        }
        if result.delivered:
            values.update(status=DeliveryStatus.DELIVERED.value, finished_at=now)
            self._activity.webhooks_delivered += 1
            return values
        self._activity.webhook_attempts_failed += 1
        if result.final or attempts >= self._max_attempts:
            values.update(status=DeliveryStatus.DEAD.value, finished_at=now)
            self._activity.webhooks_dead += 1
            log.warning("webhook delivery dead", delivery_id=due.id, error=result.error)
        else:
            delay = min(self._backoff * 2 ** (attempts - 1), self._max_backoff)
            values["next_attempt_at"] = now + timedelta(seconds=delay)
        return values

    async def _listen(self) -> None:
        async with self._hub.subscribe([WEBHOOKS_CHANNEL], conflate=True) as box:
            while True:
                await box.get()
                self._wake.set()
