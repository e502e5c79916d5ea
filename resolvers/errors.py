"""GraphQL errors for malformed requests (as opposed to business outcomes)."""

from __future__ import annotations

from graphql import GraphQLError


def bad_user_input(message: str, *, argument: str | None = None) -> GraphQLError:
    extensions: dict[str, object] = {"code": "BAD_USER_INPUT"}
    if argument is not None:
        extensions["argument"] = argument
    return GraphQLError(message, extensions=extensions)
