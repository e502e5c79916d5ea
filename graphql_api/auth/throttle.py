"""Limits on guessing: failed sign-ins per account and per client address.

Failures are counted in the rate limiter's token buckets (shared through Redis
when Redis is configured, so the limit holds across processes). Before any
password is hashed both buckets must have room for one more failure; only a
failure takes from them, so someone who knows their password is never slowed
down by their own successes. Registrations and refused refresh tokens draw on
the address bucket too: each registration costs a hash, each bad refresh a
database round trip.
"""

from __future__ import annotations

from dataclasses import dataclass

from graphql_api.hardening.rate_limits.buckets import BucketSpec, RateLimitedError, RateLimiter


@dataclass(frozen=True, slots=True)
class AuthLimits:
    """``account``: failed sign-ins per username; ``address``: failed sign-ins, refused
    refresh tokens and registrations per client address."""

    account: BucketSpec
    address: BucketSpec

    @classmethod
    def over(cls, *, per_account: int, per_address: int, window_seconds: float) -> AuthLimits:
        """Buckets that refill completely in ``window_seconds``."""
        return cls(
            account=BucketSpec("loginAccount", per_account, per_account / window_seconds),
            address=BucketSpec("loginAddress", per_address, per_address / window_seconds),
        )


class AuthThrottle:
    """Parameters:
    limiter: the token buckets (the same store as the per-operation rate limits).
    limits: how many failures each bucket holds and how fast it refills.
    """

    def __init__(self, limiter: RateLimiter, limits: AuthLimits) -> None:
        self._limiter = limiter
        self._limits = limits

    async def check(self, *, account: str | None = None, address: str | None = None) -> None:
        """Raise :class:`RateLimitedError` unless both buckets have room for one failure."""
        for key, spec in self._buckets(account, address):
            decision = await self._limiter.take(key, spec, 0.0, need=1.0)
            if not decision.allowed:
                raise RateLimitedError(spec.name, decision.retry_after)

    async def charge(self, *, account: str | None = None, address: str | None = None) -> None:
        """Count one failure (or registration) against the buckets given."""
        for key, spec in self._buckets(account, address):
            await self._limiter.take(key, spec, 1.0)

    def _buckets(self, account: str | None, address: str | None) -> list[tuple[str, BucketSpec]]:
        # No address means a trusted in-process caller (the CLI, tests): no address bucket.
        buckets = []
        if account is not None:
            buckets.append((account, self._limits.account))
        if address is not None:
            buckets.append((address, self._limits.address))
        return buckets
