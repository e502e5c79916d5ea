"""Sign-ins under attack: hashing never stalls the event loop, a flood is refused rather
than queued, and failed attempts are limited per account and per address (in Redis
when Redis is configured, so across processes)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from graphql_api.services import Services
from tests.conftest import http_client, running_app
from tests.hardening.conftest import hardened_settings
from tests.support.graphql import Json

LOGIN = """
mutation ($u: String!, $p: String!) {
  login(username: $u, password: $p) { tokens { accessToken refreshToken } userErrors { code } }
}
"""
REGISTER = """
mutation ($u: String!) { register(username: $u, password: "s3cret-pass") { userErrors { code } } }
"""
REFRESH = "mutation ($t: String!) { refreshToken(refreshToken: $t) { userErrors { code } } }"
CHEAP = '{ symbol(code: "BTCUSDT") { code } }'


async def post(client: httpx.AsyncClient, query: str, variables: Json) -> httpx.Response:
    return await client.post("/graphql", json={"query": query, "variables": variables})


async def login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await post(client, LOGIN, {"u": username, "p": password})


def outcome(response: httpx.Response) -> str:
    """INVALID_CREDENTIALS, ok, or the error code of a refusal."""
    body = response.json()
    if "errors" in body:
        return str(body["errors"][0]["extensions"]["code"])
    payload = next(iter(body["data"].values()))
    return payload["userErrors"][0]["code"] if payload["userErrors"] else "ok"


class HeldHashes:
    """Argon2's real verification, held at its start until released, recording the
    thread it ran on: what a slow hash looks like, made as slow as the test needs."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()
        self.threads: list[threading.Thread] = []

    def wrap(self, verify: Any) -> Any:
        def held(hasher: PasswordHasher, hash: str, password: str | bytes) -> Any:
            self.threads.append(threading.current_thread())
            self.entered.set()
            # Bounded: a hash on the event loop (the defect) would wait for a release
            # that only the blocked loop can make; it gives up and the test then fails.
            self.released.wait(5)
            return verify(hasher, hash, password)

        return held


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldHashes]:
    hashes = HeldHashes()
    monkeypatch.setattr(PasswordHasher, "verify", hashes.wrap(PasswordHasher.verify))
    yield hashes
    hashes.released.set()


async def wait_for(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, 30), "no password was hashed"


async def test_other_requests_are_answered_while_passwords_hash(
    sqlite_url: str, held: HeldHashes
) -> None:
    async with running_app(hardened_settings(sqlite_url)) as app, http_client(app, None) as client:
        # given: eight sign-ins with wrong passwords, hashing
        logins = [
            asyncio.create_task(login(client, f"user{n}", "wrong-password")) for n in range(8)
        ]
        await wait_for(held.entered)
        # when: a cheap request comes in meanwhile
        cheap = await post(client, CHEAP, {})
        finished_first = [task.done() for task in logins]
        held.released.set()
        answers = await asyncio.gather(*logins)
    # then: it was answered while every sign-in was still hashing, off the loop's thread
    assert cheap.json()["data"] == {"symbol": {"code": "BTCUSDT"}}
    assert not any(finished_first)
    assert threading.main_thread() not in held.threads
    assert [outcome(answer) for answer in answers] == ["INVALID_CREDENTIALS"] * 8


async def test_a_flood_of_sign_ins_is_refused_not_queued(sqlite_url: str, held: HeldHashes) -> None:
    settings = hardened_settings(sqlite_url, PASSWORD_HASH_WORKERS=1, PASSWORD_HASH_QUEUE=2)
    async with running_app(settings) as app, http_client(app, None) as client:
        services: Services = app.state.services
        # given: one hash running and one waiting for the only thread
        waiting = [asyncio.create_task(login(client, "demo", "wrong-password")) for _ in range(2)]
        while services.auth.hashing.pending < 2:  # noqa: ASYNC110 - a counter, not an event
            await asyncio.sleep(0.01)
        # when: one more arrives
        refused = await login(client, "demo", "demo-password")
        held.released.set()
        answers = await asyncio.gather(*waiting)
    # then: it is told to come back instead of queueing behind them
    assert refused.status_code == 429
    error = refused.json()["errors"][0]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert error["extensions"]["bucket"] == "passwordHashing"
    assert error["extensions"]["retryAfter"] > 0
    assert [outcome(answer) for answer in answers] == ["INVALID_CREDENTIALS"] * 2


async def test_the_nth_failed_sign_in_to_an_account_is_rate_limited(sqlite_url: str) -> None:
    settings = hardened_settings(sqlite_url, LOGIN_FAILURES_PER_ACCOUNT=3)
    async with running_app(settings) as app, http_client(app, None) as client:
        # given: three failures, spelt three ways (one account)
        for name in ("demo", "Demo", "DEMO"):
            assert outcome(await login(client, name, "wrong-password")) == "INVALID_CREDENTIALS"
        # when: the right password comes next
        refused = await login(client, "demo", "demo-password")
        # then: the account is locked for a while, with when to retry
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        error = refused.json()["errors"][0]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert error["extensions"]["bucket"] == "loginAccount"
        assert error["extensions"]["retryAfter"] > 0
        # a user who has not failed signs in as usual
        await app.state.services.auth.register("frank", "s3cret-pass")
        assert outcome(await login(client, "frank", "s3cret-pass")) == "ok"


async def test_failed_sign_ins_from_one_address_are_rate_limited(sqlite_url: str) -> None:
    settings = hardened_settings(sqlite_url, LOGIN_FAILURES_PER_ADDRESS=3)
    async with running_app(settings) as app, http_client(app, None) as client:
        for name in ("alpha", "bravo", "charlie"):  # one try per name: spraying
            assert outcome(await login(client, name, "wrong-password")) == "INVALID_CREDENTIALS"
        refused = await login(client, "demo", "demo-password")
        assert refused.json()["errors"][0]["extensions"]["bucket"] == "loginAddress"


async def test_registrations_and_bad_refresh_tokens_draw_on_the_address(sqlite_url: str) -> None:
    settings = hardened_settings(sqlite_url, LOGIN_FAILURES_PER_ADDRESS=3)
    async with running_app(settings) as app, http_client(app, None) as client:
        assert outcome(await post(client, REGISTER, {"u": "newcomer1"})) == "ok"
        assert outcome(await post(client, REFRESH, {"t": "not-a-token"})) == "INVALID_TOKEN"
        assert outcome(await post(client, REGISTER, {"u": "newcomer2"})) == "ok"
        assert outcome(await post(client, REGISTER, {"u": "newcomer3"})) == "RATE_LIMITED"
        assert outcome(await post(client, REFRESH, {"t": "not-a-token"})) == "RATE_LIMITED"


async def test_failed_sign_ins_count_across_processes_through_redis(
    sqlite_url: str, redis_url: str
) -> None:
    settings = hardened_settings(
        sqlite_url,
        REDIS_URL=redis_url,
        REDIS_KEY_PREFIX=f"test-{uuid.uuid4().hex}:",
        LOGIN_FAILURES_PER_ACCOUNT=2,
    )
    async with running_app(settings) as first, running_app(settings) as second:
        async with http_client(first, None) as client:
            for _ in range(2):
                assert outcome(await login(client, "demo", "wrong")) == "INVALID_CREDENTIALS"
        async with http_client(second, None) as client:
            assert outcome(await login(client, "demo", "demo-password")) == "RATE_LIMITED"
