"""Register, log in, refresh and log out."""

from __future__ import annotations

from graphql_api.auth import AuthError, TokenPair
from graphql_api.errors import ErrorCode, UserError
from resolvers.context import Info
from storage import models


async def register(
    info: Info, username: str, password: str
) -> tuple[models.User | None, TokenPair | None, list[UserError]]:
    auth = info.context.services.auth
    user, errors = await auth.register(username, password)
    if user is None:
        return None, None, errors
    return user, await auth.login(username, password), []


async def login(
    info: Info, username: str, password: str
) -> tuple[TokenPair | None, list[UserError]]:
    pair = await info.context.services.auth.login(username, password)
    if pair is None:
        return None, [
            UserError("password", ErrorCode.INVALID_CREDENTIALS, "wrong username or password")
        ]
    return pair, []


async def refresh(info: Info, refresh_token: str) -> tuple[TokenPair | None, list[UserError]]:
    try:
        return await info.context.services.auth.refresh(refresh_token), []
    except AuthError as error:
        return None, [UserError("refreshToken", ErrorCode.INVALID_TOKEN, str(error))]


async def logout(info: Info) -> None:
    principal = info.context.principal
    assert principal is not None, "guarded by IsAuthenticated"
    await info.context.services.auth.logout(principal)
