"""The key that signs tokens: configured, or generated once per embedded data directory.

A default secret written in the source is public, and anyone who knows it can
sign a token for any user. So with no ``JWT_SECRET`` the embedded default
(a SQLite file) generates a random secret on first start and keeps it in a
file readable by its owner only, next to the database, where every later start
(and every worker process) finds it. A server on PostgreSQL, or started with
``QUANTGRAPH_ENV=production``, serves many processes or hosts that must share
one secret: there it must be configured, and start-up stops saying so.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import tempfile
from pathlib import Path

from sqlalchemy.engine import make_url

from graphql_api.platform.settings import Settings

SECRET_FILE_NAME = "jwt-secret"


class SecretConfigurationError(RuntimeError):
    """No usable signing secret: the message says what to set."""


def signing_secret(settings: Settings) -> str:
    """``JWT_SECRET``, else the data directory's generated secret (created on first use)."""
    if settings.jwt_secret is not None:
        return settings.jwt_secret
    directory = embedded_data_directory(settings)
    if settings.environment == "production" or directory is None:
        raise SecretConfigurationError(
            "JWT_SECRET is not set: a server on PostgreSQL or with QUANTGRAPH_ENV=production "
            "needs a secret of its own, the same on every process "
            "(for example: export JWT_SECRET=$(openssl rand -hex 32))"
        )
    return _read_or_create(directory / SECRET_FILE_NAME)


def embedded_data_directory(settings: Settings) -> Path | None:
    """The folder of the SQLite database file; None for any other (or an in-memory) database."""
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database).resolve().parent


def _read_or_create(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        _create(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SecretConfigurationError(
            f"{path} is readable by other users (mode {mode:o}); run chmod 600 {path}"
        )
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise SecretConfigurationError(
            f"{path} does not hold a secret; delete it to make a new one"
        )
    return secret


def _create(path: Path) -> None:
    """Write the whole secret under a temporary name, then link it into place: a process
    starting at the same moment sees no file or the complete one, and exactly one wins."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".jwt-secret-")  # mode 0600
    try:
        with os.fdopen(handle, "w") as file:
            file.write(secrets.token_hex(32) + "\n")
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileExistsError):  # another process was first: use theirs
            os.link(temporary, path)
    finally:
        os.unlink(temporary)
