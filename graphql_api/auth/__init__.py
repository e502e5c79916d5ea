"""Users, passwords, tokens and sessions.

Access and refresh tokens are JWTs (PyJWT, HS256) that name a server-side
session; logging out revokes the session, which kills every token issued for
it at once — on this process immediately, on the others as soon as the
revocation arrives on the bus.
"""

from graphql_api.auth.principal import Principal, Role
from graphql_api.auth.service import AuthError, AuthService, TokenPair

__all__ = ["AuthError", "AuthService", "Principal", "Role", "TokenPair"]
