"""The bulk pub/sub reader against a real Redis (and a silent fake where Redis cannot be)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest
from redis import asyncio as redis

from graphql_api.realtime.redis_subscriber import (
    RedisSubscriber,
    RedisSubscriberError,
    encode_command,
)
from tests.support.servers import RedisProcess

pytestmark = pytest.mark.redis


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    """A Redis of this test's own (its configuration or life may be changed)."""
    server = RedisProcess()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def publisher(redis_url: str) -> AsyncIterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


async def collect(subscriber: RedisSubscriber, count: int) -> list[tuple[str, str]]:
    received: list[tuple[str, str]] = []
    async with asyncio.timeout(10):
        while len(received) < count:
            received.extend(await subscriber.read())
    return received


def test_commands_are_arrays_of_bulk_strings() -> None:
    assert encode_command("SUBSCRIBE", "ticks.BTCUSDT", "é") == (
        b"*3\r\n$9\r\nSUBSCRIBE\r\n$13\r\nticks.BTCUSDT\r\n$2\r\n\xc3\xa9\r\n"
    )


async def test_a_pipelined_burst_arrives_whole_and_in_order(
    redis_url: str, publisher: redis.Redis
) -> None:
    subscriber = RedisSubscriber(redis_url)
    await subscriber.open()
    try:
        subscriber.subscribe(["bulk.a", "bulk.b"])
        await asyncio.sleep(0.2)  # the confirmations come back before anything is published
        pipeline = publisher.pipeline(transaction=False)
        expected = []
        for n in range(3000):
            channel = "bulk.a" if n % 3 else "bulk.b"
            payload = f'{{"n":{n},"text":"€ {n}"}}'
            pipeline.publish(channel, payload)
            expected.append((channel, payload))
        await pipeline.execute()
        assert await collect(subscriber, len(expected)) == expected
    finally:
        await subscriber.close()


async def test_unsubscribed_channels_stop_arriving(redis_url: str, publisher: redis.Redis) -> None:
    subscriber = RedisSubscriber(redis_url)
    await subscriber.open()
    try:
        subscriber.subscribe(["keep", "drop"])
        await asyncio.sleep(0.2)
        subscriber.unsubscribe(["drop"])
        await asyncio.sleep(0.2)
        await publisher.publish("drop", "gone")
        await publisher.publish("keep", "kept")
        assert await collect(subscriber, 1) == [("keep", "kept")]
    finally:
        await subscriber.close()


async def test_a_password_is_sent_and_a_wrong_one_refused(own_redis: RedisProcess) -> None:
    admin = redis.Redis.from_url(own_redis.url)
    await admin.config_set("requirepass", "s3cret")
    await admin.aclose()
    host = f"127.0.0.1:{own_redis.port}"

    refused = RedisSubscriber(f"redis://:wrong@{host}/0")
    with pytest.raises(RedisSubscriberError, match="refused"):
        await refused.open()
    await refused.close()

    subscriber = RedisSubscriber(f"redis://:s3cret@{host}/0")
    await subscriber.open()
    try:
        subscriber.subscribe(["secured"])
        await asyncio.sleep(0.2)
        publisher = redis.Redis.from_url(f"redis://:s3cret@{host}/0")
        await publisher.publish("secured", "hello")
        await publisher.aclose()
        assert await collect(subscriber, 1) == [("secured", "hello")]
    finally:
        await subscriber.close()


async def read_until_failure(subscriber: RedisSubscriber) -> None:
    async with asyncio.timeout(5):
        while True:  # the subscribe confirmation may come first
            await subscriber.read()


async def test_a_stopped_redis_ends_the_read_with_a_connection_error(
    own_redis: RedisProcess,
) -> None:
    subscriber = RedisSubscriber(own_redis.url)
    await subscriber.open()
    try:
        subscriber.subscribe(["any"])
        reading = asyncio.create_task(read_until_failure(subscriber))
        await asyncio.sleep(0.2)
        await asyncio.to_thread(own_redis.stop)
        with pytest.raises(RedisSubscriberError):
            await reading
    finally:
        await subscriber.close()


async def test_an_idle_connection_is_pinged_and_stays_up(redis_url: str) -> None:
    subscriber = RedisSubscriber(redis_url, ping_interval=0.1)
    await subscriber.open()
    try:
        subscriber.subscribe(["quiet"])
        async with asyncio.timeout(5):
            for _ in range(5):  # silence, a PING, its PONG: nothing published, no error
                assert await subscriber.read() == []
    finally:
        await subscriber.close()


async def test_a_server_that_goes_silent_is_declared_dead() -> None:
    """Answers the opening PING, then nothing (a half-open connection): the reader
    pings after one interval and gives up after the next."""
    received: list[bytes] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read(1024))
        writer.write(b"+PONG\r\n")
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(1024):
                received.append(data)  # never answered
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    subscriber = RedisSubscriber(f"redis://127.0.0.1:{port}/0", ping_interval=0.2)
    try:
        await subscriber.open()
        subscriber.subscribe(["ticks.X"])
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(RedisSubscriberError, match="PING"):
            await subscriber.read()
        assert 0.35 < loop.time() - started < 2.0
        sent = b"".join(received)
        assert encode_command("SUBSCRIBE", "ticks.X") in sent
        assert sent.endswith(encode_command("PING"))
    finally:
        await subscriber.close()
        server.close()
        await server.wait_closed()
