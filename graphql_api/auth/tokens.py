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


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: int
    role: str
    session_id: str
    token_type: TokenType
    jti: str
    expires_at: datetime


class InvalidTokenError(Exception):
    """The token is malformed, forged, expired or of the wrong type."""


def encode(
    secret: str,
    *,
    user_id: int,
    role: str,
    session_id: str,
    token_type: TokenType,
    ttl: timedelta,
    now: datetime | None = None,
) -> tuple[str, TokenClaims]:
    issued = now or datetime.now(UTC)
    claims = TokenClaims(
        user_id=user_id,
        role=role,
        session_id=session_id,
        token_type=token_type,
        jti=str(uuid.uuid4()),
        expires_at=issued + ttl,
    )
    payload = {
        "iss": ISSUER,
        "sub": str(user_id),
        "role": role,
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
        raise InvalidTokenError(f"not an {expected} token")
    try:
        return TokenClaims(
            user_id=int(payload["sub"]),
            role=str(payload["role"]),
            session_id=str(payload["sid"]),
            token_type=expected,
            jti=str(payload["jti"]),
            expires_at=datetime.fromtimestamp(int(payload["exp"]), UTC),
        )
    except (KeyError, ValueError):
        raise InvalidTokenError("invalid token") from None
