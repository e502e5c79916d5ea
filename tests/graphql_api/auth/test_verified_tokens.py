"""Verified access tokens are remembered until they expire, and no longer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from graphql_api.auth.tokens import TokenClaims
from graphql_api.auth.verified_tokens import VerifiedTokens

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def claims(user_id: int, expires_in: timedelta) -> TokenClaims:
    return TokenClaims(user_id, f"s{user_id}", "access", f"j{user_id}", NOW, NOW + expires_in)


def test_a_remembered_token_is_found_until_it_expires() -> None:
    verified = VerifiedTokens()
    verified.remember("token-a", claims(1, timedelta(minutes=15)))
    assert verified.get("token-a", NOW + timedelta(minutes=14)) == claims(1, timedelta(minutes=15))
    # at its expiry it is gone, and stays gone
    assert verified.get("token-a", NOW + timedelta(minutes=15)) is None
    assert verified.get("token-a", NOW) is None
    assert len(verified) == 0


def test_only_the_exact_token_string_matches() -> None:
    verified = VerifiedTokens()
    verified.remember("header.payload.signature", claims(1, timedelta(minutes=15)))
    assert verified.get("header.payload.signaturX", NOW) is None
    assert verified.get("header.payload.signature ", NOW) is None


def test_the_least_recently_used_token_goes_first() -> None:
    verified = VerifiedTokens(capacity=2)
    verified.remember("a", claims(1, timedelta(minutes=15)))
    verified.remember("b", claims(2, timedelta(minutes=15)))
    assert verified.get("a", NOW) is not None  # a was used last
    verified.remember("c", claims(3, timedelta(minutes=15)))
    assert verified.get("b", NOW) is None
    assert verified.get("a", NOW) is not None
    assert verified.get("c", NOW) is not None
