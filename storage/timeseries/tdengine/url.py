"""Connection URLs: ``taos://`` (native client library) or ``taosws://`` (taosAdapter)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from storage.timeseries.tdengine.errors import TDengineConfigError

NATIVE = "taos"
WEBSOCKET = "taosws"
_DEFAULT_PORTS = {NATIVE: 6030, WEBSOCKET: 6041}
DEFAULT_DATABASE = "market"
# Unquoted TDengine identifiers: letters, digits, underscore; no leading digit; 64 bytes max.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


@dataclass(frozen=True, slots=True)
class TDengineURL:
    scheme: str
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str

    @property
    def redacted(self) -> str:
        """For logs and error messages: never print the password."""
        return f"{self.scheme}://{self.user}:***@{self.host}:{self.port}/{self.database}"


def parse_url(url: str) -> TDengineURL:
    """Parse ``taos[ws]://user:password@host:port/database``.

    User and password default to TDengine's ``root``/``taosdata``, the port to
    the scheme's standard port and the database to ``market``. The database name
    is lower-cased because unquoted TDengine identifiers are case-insensitive.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise TDengineConfigError(
            f"unsupported TDengine URL scheme {parts.scheme!r}: use taos:// (native) "
            "or taosws:// (WebSocket via taosAdapter)"
        )
    if parts.query or parts.fragment:
        raise TDengineConfigError(
            "TDengine URL options go in keyword arguments, not the query string"
        )
    try:
        port = parts.port
    except ValueError as error:
        raise TDengineConfigError(f"invalid port in TDengine URL: {error}") from None
    path = parts.path.strip("/")
    database = unquote(path) if path else DEFAULT_DATABASE
    if not _IDENTIFIER.fullmatch(database):
        raise TDengineConfigError(
            f"invalid TDengine database name {database!r}: "
            "letters, digits and underscores, not starting with a digit"
        )
    return TDengineURL(
        scheme=scheme,
        host=parts.hostname or "localhost",
        port=port if port is not None else _DEFAULT_PORTS[scheme],
        user=unquote(parts.username) if parts.username else "root",
        password=unquote(parts.password) if parts.password is not None else "taosdata",
        database=database.lower(),
    )
