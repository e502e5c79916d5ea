"""Token-bucket rate limits, weighted by query cost.

Each client (a user, or an IP address when anonymous) has a bucket of
``burst`` points refilled at ``per_second``; an operation takes its query cost
from the bucket or is refused with the time after which it would fit. With
Redis the buckets live in Redis and are updated by one Lua script (atomic, on
Redis' clock), so the limit holds across every server process; without Redis,
or while Redis is unreachable, each process keeps its own buckets in memory.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from redis import asyncio as redis
from redis.exceptions import RedisError

from graphql_api.platform.resilience import CircuitBreaker

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class BucketSpec:
    """A bucket: ``burst`` points at most, refilled at ``per_second`` points per second."""

    name: str
    burst: float
    per_second: float


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    remaining: float
    retry_after: float  # seconds until the request would fit; 0 when allowed


class MemoryBuckets:
    """Buckets in this process, the least recently used forgotten past ``max_keys``."""

    def __init__(
        self, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._max_keys = max_keys
        self._clock = clock

    def take(self, key: str, spec: BucketSpec, cost: float, need: float = 0.0) -> Decision:
        now = self._clock()
        tokens, updated = self._buckets.pop(key, (spec.burst, now))
        tokens = min(spec.burst, tokens + (now - updated) * spec.per_second)
        required = max(cost, need)
        if required <= tokens:
            tokens -= cost
            decision = Decision(True, tokens, 0.0)
        else:
            decision = Decision(False, tokens, (required - tokens) / spec.per_second)
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return decision


# KEYS[1]: bucket; ARGV: burst, per_second, cost, need (points that must be there, at least
# cost). Returns {allowed, remaining, retry_after}.
# Redis' own clock, so processes with skewed clocks still agree.
_TAKE = """
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local need = math.max(cost, tonumber(ARGV[4]) or 0)
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local retry = 0
if need <= tokens then
  tokens = tokens - cost
  allowed = 1
else
  retry = (need - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(tokens), tostring(retry)}
"""


class RateLimiter:
    """Parameters:
    redis_client: shared buckets when given; memory only when None.
    breaker: skips Redis while it is down (the in-memory buckets take over).
    key_prefix: namespace of the Redis keys.
    """

    def __init__(
        self,
        *,
        redis_client: redis.Redis | None = None,
        breaker: CircuitBreaker | None = None,
        key_prefix: str = "quantgraph:",
        memory: MemoryBuckets | None = None,
    ) -> None:
        self._redis = redis_client
        self._breaker = breaker or CircuitBreaker("redis")
        self._prefix = f"{key_prefix}ratelimit:"
        self._memory = memory or MemoryBuckets()
        self._script = redis_client.register_script(_TAKE) if redis_client is not None else None
        self.refused = 0

    @property
    def shared(self) -> bool:
        return self._redis is not None

    async def take(self, key: str, spec: BucketSpec, cost: float, *, need: float = 0.0) -> Decision:
        """Take ``cost`` points (at most the whole bucket) from ``key``'s bucket of ``spec``.

        ``need``: points that must be in the bucket for the take to be allowed,
        when more than ``cost``; ``take(key, spec, 0, need=1)`` asks "is there
        room for one more?" without using any (a failed sign-in is charged only
        once it has failed).
        """
        cost = min(max(cost, 0.0), spec.burst)
        need = min(max(need, 0.0), spec.burst)
        bucket = f"{spec.name}:{key}"
        decision: Decision | None = None
        if self._script is not None and self._breaker.allow():
            try:
                allowed, remaining, retry = await self._script(
                    keys=[self._prefix + bucket],
                    args=[spec.burst, spec.per_second, cost, need],
                )
            except (RedisError, OSError) as error:
                self._breaker.record_failure()
                log.warning("rate limit store unavailable; limiting per process", error=str(error))
            else:
                self._breaker.record_success()
                decision = Decision(bool(int(allowed)), float(remaining), float(retry))
        if decision is None:
            decision = self._memory.take(bucket, spec, cost, need)
        if not decision.allowed:
            self.refused += 1
        return decision


class RateLimitedError(Exception):
    """A bucket outside the per-operation limits refused the caller (a domain-level limit,
    such as failed sign-ins): becomes ``RATE_LIMITED`` with ``retryAfter``."""

    def __init__(self, bucket: str, retry_after: float) -> None:
        self.bucket = bucket
        self.retry_after = round(retry_after, 3)
        super().__init__(f"Rate limit exceeded ({bucket}): retry in {self.retry_after:g} s")


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` takes whole seconds; round up so a client never retries too early."""
    return str(max(1, math.ceil(seconds)))


__all__ = [
    "BucketSpec",
    "Decision",
    "MemoryBuckets",
    "RateLimitedError",
    "RateLimiter",
    "retry_after_header",
]
