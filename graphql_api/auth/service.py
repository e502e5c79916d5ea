"""Registration, login, token refresh and logout, with server-side revocation."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from graphql_api.auth import tokens
from graphql_api.auth.identities import IdentityCache
from graphql_api.auth.passwords import PasswordHashing
from graphql_api.auth.principal import Principal, Role
from graphql_api.auth.throttle import AuthLimits, AuthThrottle
from graphql_api.auth.verified_tokens import VerifiedTokens
from graphql_api.hardening.rate_limits.buckets import RateLimiter
from graphql_api.platform.errors import ErrorCode, UserError
from graphql_api.platform.names import check_name, forbidden_character
from graphql_api.platform.settings import Settings
from graphql_api.realtime.channels import REVOCATION_CHANNEL, USER_CHANGES_CHANNEL
from graphql_api.realtime.hub import Hub
from graphql_api.realtime.outbox import EventOutbox
from graphql_api.trading.accounts import account_currencies, open_account
from storage import models
from storage.engine import SessionFactory
from storage.repositories import users as user_repo

log = structlog.get_logger(__name__)

T = TypeVar("T")
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{3,32}$")
MAX_USERNAME_LENGTH = 64  # longer is never a user (the column's width): refused unhashed
MIN_PASSWORD_LENGTH = 8
# Argon2 hashes any length, but hashing megabytes per attempt is a cheap way to burn CPU.
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
    settings: token lifetimes, sign-in limits, hashing pool size, role cache lifetime.
    hub: carries revocations and user changes from the other server processes.
    outbox: carries this process' revocations and user changes to them, staged in
        the transaction that makes the change (delivered once the bus takes them,
        even after an outage).
    secret: signs and checks tokens (:func:`graphql_api.auth.secret.signing_secret`);
        None for administration that issues no tokens (the CLI).
    limiter: the token buckets that count failed sign-ins (per process when None).
    """

    def __init__(
        self,
        sessions: SessionFactory,
        settings: Settings,
        hub: Hub,
        outbox: EventOutbox,
        *,
        secret: str | None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._hub = hub
        self._outbox = outbox
        self._secret = secret
        self._revoked: set[str] = set()
        self._verified = VerifiedTokens()
        self._on_revoke: list[Callable[[str], None]] = []
        self._on_user_change: list[Callable[[int], None]] = []
        self.hashing = PasswordHashing(
            workers=settings.password_hash_workers, max_pending=settings.password_hash_queue
        )
        self.throttle = AuthThrottle(
            limiter or RateLimiter(),
            AuthLimits.over(
                per_account=settings.login_failures_per_account,
                per_address=settings.login_failures_per_address,
                window_seconds=settings.login_failure_window_seconds,
            ),
        )
        self.identities = IdentityCache(sessions, ttl=settings.role_cache_seconds)

    def close(self) -> None:
        self.hashing.close()

    # -- accounts ---------------------------------------------------------------------------

    async def register(
        self,
        username: str,
        password: str,
        role: Role = Role.TRADER,
        *,
        address: str | None = None,
    ) -> tuple[models.User | None, list[UserError]]:
        """Create a user. ``address``: the client's, whose registrations are limited
        (each one costs a password hash)."""
        errors = check_credentials(username, password)
        if errors:
            return None, errors
        await self.throttle.check(address=address)
        await self.throttle.charge(address=address)
        password_hash = await self.hashing.hash(password)
        async with self._sessions() as session:
            user = models.User(
                username=username,
                password_hash=password_hash,
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
                self._settings.start_cash,
            )
            await session.commit()
        return user, []

    async def login(
        self, username: str, password: str, *, address: str | None = None
    ) -> TokenPair | None:
        """Tokens for a new session, or None for a wrong username or password.

        Raises :class:`~graphql_api.hardening.rate_limits.buckets.RateLimitedError` once the
        account or the address has failed too often, before any hashing.
        """
        if len(username) > MAX_USERNAME_LENGTH or len(password) > MAX_PASSWORD_LENGTH:
            return None  # no such user or password can exist; not worth a hash
        account = models.username_key(username)
        await self.throttle.check(account=account, address=address)
        async with self._sessions() as session:
            user = await user_repo.user_by_username(session, username)
        if not await self.hashing.verify(user.password_hash if user else None, password):
            await self.throttle.charge(account=account, address=address)
            return None
        assert user is not None
        return await self.start_session(user)

    async def start_session(self, user: models.User) -> TokenPair:
        """Tokens for a new session of ``user``, whose password was just checked or set."""
        async with self._sessions() as session:
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

    async def refresh(self, refresh_token: str, *, address: str | None = None) -> TokenPair:
        """Rotate the refresh token. Replaying an old one revokes the whole session:
        it means the token leaked, and both holders lose access. A refused token
        counts against the address like a failed sign-in."""
        await self.throttle.check(address=address)
        try:
            return await self._refresh(refresh_token)
        except AuthError:
            await self.throttle.charge(address=address)
            raise

    async def _refresh(self, refresh_token: str) -> TokenPair:
        try:
            claims = tokens.decode(self._signing_secret(), refresh_token, "refresh")
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

    async def set_role(self, username: str, role: Role) -> models.User | None:
        """Change a user's role; every process stops using the old one at once.
        None when there is no such user."""
        async with self._sessions() as session:
            user = await user_repo.user_by_username(session, username)
            if user is None:
                return None
            user.role = role.value
            self._outbox.stage(session, USER_CHANGES_CHANNEL, str(user.id))
            await session.commit()
        self._user_changed_locally(user.id)
        return user

    async def remove_user(self, username: str) -> bool:
        """Delete a user with everything they own; their tokens stop working everywhere."""
        async with self._sessions() as session:
            user = await user_repo.user_by_username(session, username)
            if user is None:
                return False
            user_id = user.id
            await user_repo.delete_user(session, user_id)
            self._outbox.stage(session, USER_CHANGES_CHANNEL, str(user_id))
            await session.commit()
        self._user_changed_locally(user_id)
        return True

    # -- per request ------------------------------------------------------------------------

    async def authenticate(self, access_token: str) -> Principal:
        """Check an access token; the user's role comes from the database (cached
        briefly by :class:`IdentityCache`), never from the token."""
        claims = self._verified.get(access_token)
        if claims is None:
            try:
                claims = tokens.decode(self._signing_secret(), access_token, "access")
            except tokens.InvalidTokenError as error:
                raise AuthError(str(error)) from None
            self._verified.remember(access_token, claims)
        if claims.session_id in self._revoked:
            raise AuthError("session revoked")
        identity = await self.identities.get(claims.user_id)
        # A token older than its user was issued to a removed user whose id was reused.
        if identity is None or claims.issued_at < identity.created_at.replace(microsecond=0):
            raise AuthError("user no longer exists")
        return Principal(
            user_id=identity.user_id,
            username=identity.username,
            role=identity.role,
            session_id=claims.session_id,
            expires_at=claims.expires_at,
        )

    def is_revoked(self, session_id: str) -> bool:
        return session_id in self._revoked

    def on_revoke(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(session_id)`` on every revocation; returns an unsubscribe function."""
        self._on_revoke.append(callback)
        return _remover(self._on_revoke, callback)

    def on_user_change(self, callback: Callable[[int], None]) -> Callable[[], None]:
        """Call ``callback(user_id)`` when a user's role changes or the user is removed
        (on any process); returns an unsubscribe function."""
        self._on_user_change.append(callback)
        return _remover(self._on_user_change, callback)

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
        channels = [REVOCATION_CHANNEL, USER_CHANGES_CHANNEL]
        async with self._hub.subscribe(channels, conflate=False) as mailbox:
            while True:
                try:
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can
                    # swallow the cancel that ends this loop at shutdown.
                    async with asyncio.timeout(resync_every):
                        message = await mailbox.get()
                except TimeoutError:
                    with contextlib.suppress(Exception):
                        await self.load_revocations()
                    continue
                if message.channel == USER_CHANGES_CHANNEL:
                    with contextlib.suppress(ValueError):
                        self._user_changed_locally(int(message.message))
                else:
                    self._revoke_locally(message.message)

    def _revoke_locally(self, session_id: str) -> None:
        if session_id in self._revoked:
            return
        self._revoked.add(session_id)
        for callback in list(self._on_revoke):
            callback(session_id)

    def _user_changed_locally(self, user_id: int) -> None:
        self.identities.forget(user_id)
        for callback in list(self._on_user_change):
            callback(user_id)

    def _signing_secret(self) -> str:
        if self._secret is None:
            raise RuntimeError("this AuthService has no signing secret (administration only)")
        return self._secret

    def _issue(self, user: models.User, session_id: str) -> tuple[TokenPair, str]:
        secret = self._signing_secret()
        access, access_claims = tokens.encode(
            secret,
            user_id=user.id,
            session_id=session_id,
            token_type="access",
            ttl=timedelta(seconds=self._settings.access_token_ttl_seconds),
        )
        refresh, refresh_claims = tokens.encode(
            secret,
            user_id=user.id,
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


def _remover(
    callbacks: list[Callable[[T], None]], callback: Callable[[T], None]
) -> Callable[[], None]:
    """An unsubscribe function that may be called more than once."""

    def remove() -> None:
        with contextlib.suppress(ValueError):
            callbacks.remove(callback)

    return remove


def check_credentials(username: str, password: str) -> list[UserError]:
    """A new user's name and password: what may be stored, what can be typed back."""
    errors = check_name("username", username, max_length=32)
    if not errors and not USERNAME_PATTERN.fullmatch(username):  # match() allows a final "\n"
        errors.append(
            UserError(
                "username",
                ErrorCode.INVALID,
                "username must be 3-32 letters, digits, '_', '.' or '-'",
            )
        )
    errors += check_password(password)
    return errors


def check_password(password: str) -> list[UserError]:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        return [
            UserError(
                "password",
                ErrorCode.OUT_OF_RANGE,
                f"password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters",
            )
        ]
    if not password.strip():
        return [UserError("password", ErrorCode.INVALID, "password must not be only whitespace")]
    bad = forbidden_character(password)
    if bad is not None:
        return [
            UserError(
                "password",
                ErrorCode.INVALID,
                f"password must not contain control or invisible formatting characters ({bad})",
            )
        ]
    return []
