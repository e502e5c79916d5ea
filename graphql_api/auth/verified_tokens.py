"""Access tokens already verified by this process, remembered until they expire.

A feed posts ``ingestTicks`` a hundred times a second with the same bearer
token, and checking its HS256 signature (PyJWT: parse, prepare the key, HMAC,
validate the claims) was about a fifth of each call's CPU — time the same
event loop needed for fan-out. A token's signature and claims do not change,
so what one successful check found holds until the token's ``exp``: the token
string (the whole of it, signature included) keys the claims it verified to.
Everything that *can* change is still checked on every use by the caller:
revocation of the session, the user's existence and role.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime

from graphql_api.auth.tokens import TokenClaims

DEFAULT_CAPACITY = 4096


class VerifiedTokens:
    """A bounded, least-recently-used map of token -> claims, dropping expired entries.

    Parameters:
        capacity: how many tokens are remembered (the least recently used goes first).
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._claims: OrderedDict[str, TokenClaims] = OrderedDict()

    def __len__(self) -> int:
        return len(self._claims)

    def get(self, token: str, now: datetime | None = None) -> TokenClaims | None:
        """The claims ``token`` verified to, while it has not expired; else None."""
        claims = self._claims.get(token)
        if claims is None:
            return None
        if (now or datetime.now(UTC)) >= claims.expires_at:
            del self._claims[token]
            return None
        self._claims.move_to_end(token)
        return claims

    def remember(self, token: str, claims: TokenClaims) -> None:
        self._claims[token] = claims
        self._claims.move_to_end(token)
        while len(self._claims) > self.capacity:
            self._claims.popitem(last=False)
