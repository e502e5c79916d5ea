"""Identity: the signed-in user, session tokens and the auth mutations' payloads."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

import strawberry

from graphql_api.auth import TokenPair
from schema.accounts import Account
from schema.common import UserError
from schema.compiled import Column, Kind, ObjectReads, SameRow
from schema.enums import Role
from storage import models


@strawberry.type(description="The signed-in user.")
class User:
    id: strawberry.ID = strawberry.field(description="User id.")
    username: str = strawberry.field(description="Login name.")
    role: Role = strawberry.field(description="What the user may do.")
    created_at: datetime = strawberry.field(description="Registration time.")

    # The compiled read path (docs/compiled_reads.md): ``me`` is the caller's row.
    sql_reads: ClassVar[ObjectReads] = ObjectReads(
        table="users",
        fields={
            "id": Column("id", Kind.ID),
            "username": Column("username", Kind.TEXT),
            "role": Column("role", Kind.ENUM),
            "createdAt": Column("created_at", Kind.TIME),
            "account": SameRow(),
        },
    )

    @classmethod
    def from_row(cls, row: models.User) -> User:
        return cls(
            id=strawberry.ID(str(row.id)),
            username=row.username,
            role=Role(row.role),
            created_at=row.created_at,
        )

    @strawberry.field(description="Cash, positions and fills.")
    def account(self) -> Account:
        return Account()


@strawberry.type(description="Tokens for a session: send the access token as a Bearer token.")
class AuthTokens:
    access_token: str = strawberry.field(description="Short-lived JWT for Authorization: Bearer.")
    refresh_token: str = strawberry.field(description="Exchange it with refreshToken (rotates).")
    access_token_expires_at: datetime = strawberry.field(description="Access token expiry.")
    refresh_token_expires_at: datetime = strawberry.field(description="Refresh token expiry.")

    @classmethod
    def from_pair(cls, pair: TokenPair) -> AuthTokens:
        return cls(
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            access_token_expires_at=pair.access_expires_at,
            refresh_token_expires_at=pair.refresh_expires_at,
        )


@strawberry.type(description="Result of register, login and refreshToken.")
class AuthPayload:
    tokens: AuthTokens | None = strawberry.field(description="New tokens; null on errors.")
    user: User | None = strawberry.field(description="The user (register only).")
    user_errors: list[UserError] = strawberry.field(description="Why it failed.")


@strawberry.type(description="Result of logout.")
class LogoutPayload:
    ok: bool = strawberry.field(description="The session is revoked on every server process.")
