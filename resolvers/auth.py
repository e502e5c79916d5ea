"""Identity: the signed-in user; register, log in, refresh and log out."""

from __future__ import annotations

from graphql import GraphQLError
from starlette.requests import HTTPConnection

from graphql_api.auth import AuthError, Role, TokenPair
from graphql_api.auth.passwords import HashingBusyError
from graphql_api.hardening.rate_limits.buckets import RateLimitedError
from graphql_api.platform.errors import ErrorCode, UserError
from resolvers.context import Info
from resolvers.errors import rate_limited
from storage import models
from storage.repositories import users as user_repo


async def me(info: Info) -> models.User | None:
    async with info.context.services.sessions() as session:
        return await user_repo.user_by_id(session, info.context.user_id)


def role_of(user: models.User) -> Role:
    return Role(user.role)


async def register(
    info: Info, username: str, password: str
) -> tuple[models.User | None, TokenPair | None, list[UserError]]:
    auth = info.context.services.auth
    address = _client_address(info)
    try:
        user, errors = await auth.register(username, password, address=address)
        if user is None:
            return None, None, errors
        return user, await auth.start_session(user), []
    except (RateLimitedError, HashingBusyError) as error:
        raise _refusal(info, error) from None


async def login(
    info: Info, username: str, password: str
) -> tuple[TokenPair | None, list[UserError]]:
    try:
        pair = await info.context.services.auth.login(
            username, password, address=_client_address(info)
        )
    except (RateLimitedError, HashingBusyError) as error:
        raise _refusal(info, error) from None
    if pair is None:
        return None, [
            UserError("password", ErrorCode.INVALID_CREDENTIALS, "wrong username or password")
        ]
    return pair, []


async def refresh(info: Info, refresh_token: str) -> tuple[TokenPair | None, list[UserError]]:
    auth = info.context.services.auth
    try:
        return await auth.refresh(refresh_token, address=_client_address(info)), []
    except AuthError as error:
        return None, [UserError("refreshToken", ErrorCode.INVALID_TOKEN, str(error))]
    except RateLimitedError as error:
        raise _refusal(info, error) from None


async def logout(info: Info) -> None:
    principal = info.context.principal
    assert principal is not None, "guarded by IsAuthenticated"
    await info.context.services.auth.logout(principal)


def _refusal(info: Info, error: RateLimitedError | HashingBusyError) -> GraphQLError:
    if isinstance(error, HashingBusyError):
        return rate_limited(info.context.response, "passwordHashing", error.retry_after)
    return rate_limited(info.context.response, error.bucket, error.retry_after)


def _client_address(info: Info) -> str:
    request = info.context.request
    if isinstance(request, HTTPConnection) and request.client is not None:
        return request.client.host
    return "unknown"
