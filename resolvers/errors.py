"""GraphQL errors for malformed requests (as opposed to business outcomes)."""

from __future__ import annotations

from graphql import GraphQLError
from starlette.responses import Response
from starlette.websockets import WebSocket

from graphql_api.hardening.rate_limits.buckets import retry_after_header


def bad_user_input(message: str, *, argument: str | None = None) -> GraphQLError:
    extensions: dict[str, object] = {"code": "BAD_USER_INPUT"}
    if argument is not None:
        extensions["argument"] = argument
    return GraphQLError(message, extensions=extensions)


def rate_limited(
    response: Response | WebSocket | None, bucket: str, retry_after: float
) -> GraphQLError:
    """``RATE_LIMITED`` with ``retryAfter``, as the per-operation limits answer (over HTTP:
    status 429 and ``Retry-After``)."""
    retry_after = round(retry_after, 3)
    if isinstance(response, Response):
        response.status_code = 429
        response.headers["retry-after"] = retry_after_header(retry_after)
    return GraphQLError(
        f"Rate limit exceeded ({bucket}): retry in {retry_after:g} s",
        extensions={"code": "RATE_LIMITED", "retryAfter": retry_after, "bucket": bucket},
    )
