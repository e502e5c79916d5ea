"""JWT encoding and decoding (PyJWT, HS256)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import jwt

TokenType = Literal["access", "refresh"]
ALGORITHM = "HS256"
ISSUER = "quantgraph"
_WRONG_TYPE = {"access": "not an access token", "refresh": "not a refresh token"}


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a token says. No role: what a user may do is the database's answer, read
    when the token is used (tokens issued before carried one; it is ignored)."""

    user_id: int
    session_id: str
    token_type: TokenType
    jti: str
    issued_at: datetime
    expires_at: datetime


class InvalidTokenError(Exception):
    """The token is malformed, forged, expired or of the wrong type."""


def encode(
    secret: str,
    *,
    user_id: int,
    session_id: str,
    token_type: TokenType,
    ttl: timedelta,
    now: datetime | None = None,
) -> tuple[str, TokenClaims]:
    # JWT times are whole seconds; keep the claims equal to what a decode will read.
    issued = (now or datetime.now(UTC)).replace(microsecond=0)
    claims = TokenClaims(
        user_id=user_id,
        session_id=session_id,
        token_type=token_type,
        jti=str(uuid.uuid4()),
        issued_at=issued,
        expires_at=issued + ttl,
    )
    payload = {
        "iss": ISSUER,
        "sub": str(user_id),
        "sid": session_id,
        "typ": token_type,
        "jti": claims.jti,
        "iat": issued,
        "exp": claims.expires_at,
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM), claims


def decode(secret: str, token: str, expected: TokenType) -> TokenClaims:
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "sid", "typ", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidTokenError("token expired") from None
    except jwt.PyJWTError:
        raise InvalidTokenError("invalid token") from None
    if payload.get("typ") != expected:
        raise InvalidTokenError(_WRONG_TYPE[expected])
    try:
        user_id = int(payload["sub"])
        if not 0 < user_id < 2**63:  # a database id, or the lookup itself would fail
            raise ValueError(user_id)
        return TokenClaims(
            user_id=user_id,
            session_id=str(payload["sid"]),
            token_type=expected,
            jti=str(payload["jti"]),
            issued_at=datetime.fromtimestamp(int(payload["iat"]), UTC),
            expires_at=datetime.fromtimestamp(int(payload["exp"]), UTC),
        )
    except (KeyError, ValueError, TypeError, OverflowError, OSError):
        raise InvalidTokenError("invalid token") from None
