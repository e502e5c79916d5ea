"""The protocol messages the shared path writes itself, and the close codes it uses.

Shared events are framed as ``head + payload + tail`` so that one serialized
payload serves every subscriber; only the head differs per operation id.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

TOO_MANY_CONNECTIONS = 4429
TOO_MANY_CONNECTIONS_REASON = "too many connections"
INIT_TIMEOUT = 4408
INIT_TIMEOUT_REASON = "Connection initialisation timeout"
GOING_AWAY = 1001
# "Try again later" (RFC 6455): graphql-ws clients retry it; 4500 would end their retries.
TRY_AGAIN_LATER = 1013
GOING_AWAY_REASON = "server shutting down"

PING_OPERATION = "\x00ping"  # an outbox slot no client operation id can take
PING_TEXT = '{"type":"ping"}'
NEXT_TAIL = "}"


def next_head(op_id: str, *, legacy: bool) -> str:
    """What precedes the shared payload in a ``next`` (legacy: ``data``) message."""
    if legacy:
        return '{"type":"data","id":' + json.dumps(op_id) + ',"payload":'
    return '{"id":' + json.dumps(op_id) + ',"type":"next","payload":'


def complete_text(op_id: str) -> str:
    return json.dumps({"type": "complete", "id": op_id}, separators=(",", ":"))


def error_text(op_id: str, errors: Sequence[Mapping[str, object]], *, legacy: bool) -> str:
    payload: object = errors[0] if legacy and errors else errors
    return json.dumps({"type": "error", "id": op_id, "payload": payload}, separators=(",", ":"))
