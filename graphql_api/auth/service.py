"""Registration, login, token refresh and logout, with server-side revocation."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from graphql_api.accounts import account_currencies, open_account
from graphql_api.auth import tokens
from graphql_api.auth.passwords import hash_password, verify_password
from graphql_api.auth.principal import Principal, Role
from graphql_api.errors import ErrorCode, UserError
from graphql_api.event_outbox import EventOutbox
from graphql_api.hub import Hub
from graphql_api.settings import Settings
from storage import models
from storage.engine import SessionFactory
from storage.repositories import users as user_repo

log = structlog.get_logger(__name__)

REVOCATION_CHANNEL = "auth.revocations"
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{3,32}$")
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256


class AuthError(Exception):
    """Authentication failed; ``code`` is UNAUTHENTICATED for the client."""


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    access_expires_at: datetime
    refresh_expires_at: datetime


class AuthService:
    """Parameters:
    sessions: database sessions.
    settings: JWT secret and token lifetimes.
    hub: carries revocations from the other server processes.
    outbox: carries this process' revocations to them, staged in the transaction
        that revokes (delivered once the bus takes them, even after an outage).
    """

    def __init__(
        self, sessions: SessionFactory, settings: Settings, hub: Hub, outbox: EventOutbox
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._hub = hub
        self._outbox = outbox
        self._revoked: set[str] = set()
        self._on_revoke: list[Callable[[str], None]] = []

    # -- accounts ---------------------------------------------------------------------------

    async def register(
        self, username: str, password: str, role: Role = Role.TRADER
    ) -> tuple[models.User | None, list[UserError]]:
        errors = _check_credentials(username, password)
        if errors:
            return None, errors
        async with self._sessions() as session:
            user = models.User(
                username=username,
                password_hash=hash_password(password),
                role=role.value,
                created_at=datetime.now(UTC),
            )
            session.add(user)
            try:
                await session.flush()
            except IntegrityError:
                await session.rollback()
                return None, [UserError("username", ErrorCode.CONFLICT, "that username is taken")]
            await open_account(
                session,
                user.id,
                await account_currencies(session),
                self._settings.demo_start_cash,
            )
            await session.commit()
        return user, []

    async def login(self, username: str, password: str) -> TokenPair | None:
        async with self._sessions() as session:
            user = await user_repo.user_by_username(session, username)
            if not verify_password(user.password_hash if user else None, password):
                return None
            assert user is not None
            session_id = str(uuid.uuid4())
            pair, refresh_jti = self._issue(user, session_id)
            session.add(
                models.AuthSession(
                    id=session_id,
                    user_id=user.id,
                    refresh_jti=refresh_jti,
                    created_at=datetime.now(UTC),
                    expires_at=pair.refresh_expires_at,
                    revoked_at=None,
                )
            )
            await session.commit()
        return pair

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate the refresh token. Replaying an old one revokes the whole session:
        it means the token leaked, and both holders lose access."""
        try:
            claims = tokens.decode(self._settings.jwt_secret, refresh_token, "refresh")
        except tokens.InvalidTokenError as error:
            raise AuthError(str(error)) from None
        async with self._sessions() as session:
            row = await session.get(models.AuthSession, claims.session_id, with_for_update=True)
            user = await user_repo.user_by_id(session, claims.user_id)
            if row is None or user is None or row.revoked_at is not None:
                raise AuthError("session revoked")
            if row.refresh_jti != claims.jti:
                row.revoked_at = datetime.now(UTC)
                self._outbox.stage(session, REVOCATION_CHANNEL, row.id)
                await session.commit()
                self._revoke_locally(row.id)
                raise AuthError("refresh token reused; session revoked")
            pair, row.refresh_jti = self._issue(user, row.id)
            row.expires_at = pair.refresh_expires_at
            await session.commit()
        return pair

    async def logout(self, principal: Principal) -> None:
        async with self._sessions() as session:
            row = await session.get(models.AuthSession, principal.session_id)
            if row is not None and row.revoked_at is None:
                row.revoked_at = datetime.now(UTC)
                self._outbox.stage(session, REVOCATION_CHANNEL, row.id)
                await session.commit()
        self._revoke_locally(principal.session_id)

    # -- per request ------------------------------------------------------------------------

    def authenticate(self, access_token: str) -> Principal:
        """Check an access token without touching the database (hot path)."""
        try:
            claims = tokens.decode(self._settings.jwt_secret, access_token, "access")
        except tokens.InvalidTokenError as error:
            raise AuthError(str(error)) from None
        if claims.session_id in self._revoked:
            raise AuthError("session revoked")
        try:
            role = Role(claims.role)
        except ValueError:
            raise AuthError("invalid token") from None
        return Principal(
            user_id=claims.user_id,
            username="",
            role=role,
            session_id=claims.session_id,
            expires_at=claims.expires_at,
        )

    def is_revoked(self, session_id: str) -> bool:
        return session_id in self._revoked

    def on_revoke(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(session_id)`` on every revocation; returns an unsubscribe function."""
        self._on_revoke.append(callback)
        return lambda: self._on_revoke.remove(callback)

    # -- revocation list --------------------------------------------------------------------

    async def load_revocations(self) -> None:
        now = datetime.now(UTC)
        async with self._sessions() as session:
            result = await session.scalars(
                select(models.AuthSession.id).where(
                    models.AuthSession.revoked_at.is_not(None),
                    models.AuthSession.expires_at > now,
                )
            )
            for session_id in result:
                self._revoke_locally(session_id)

    async def run(self, *, resync_every: float = 30.0) -> None:
        """Follow revocations from every process; resync from the database as a backstop
        in case a message was lost while the bus was down."""
        async with self._hub.subscribe([REVOCATION_CHANNEL], conflate=False) as mailbox:
            while True:
                try:
                    message = await asyncio.wait_for(mailbox.get(), resync_every)
                except TimeoutError:
                    with contextlib.suppress(Exception):
                        await self.load_revocations()
                    continue
                self._revoke_locally(message.message)

    def _revoke_locally(self, session_id: str) -> None:
        if session_id in self._revoked:
            return
        self._revoked.add(session_id)
        for callback in list(self._on_revoke):
            callback(session_id)

    def _issue(self, user: models.User, session_id: str) -> tuple[TokenPair, str]:
        secret = self._settings.jwt_secret
        access, access_claims = tokens.encode(
            secret,
            user_id=user.id,
            role=user.role,
            session_id=session_id,
            token_type="access",
            ttl=timedelta(seconds=self._settings.access_token_ttl_seconds),
        )
        refresh, refresh_claims = tokens.encode(
            secret,
            user_id=user.id,
            role=user.role,
            session_id=session_id,
            token_type="refresh",
            ttl=timedelta(seconds=self._settings.refresh_token_ttl_seconds),
        )
        pair = TokenPair(
            access_token=access,
            refresh_token=refresh,
            access_expires_at=access_claims.expires_at,
            refresh_expires_at=refresh_claims.expires_at,
        )
        return pair, refresh_claims.jti


def _check_credentials(username: str, password: str) -> list[UserError]:
    errors: list[UserError] = []
    if not USERNAME_PATTERN.match(username):
        errors.append(
            UserError(
                "username",
                ErrorCode.INVALID,
                "username must be 3-32 letters, digits, '_', '.' or '-'",
            )
        )
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        errors.append(
            UserError(
                "password",
                ErrorCode.OUT_OF_RANGE,
                f"password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters",
            )
        )
    return errors
