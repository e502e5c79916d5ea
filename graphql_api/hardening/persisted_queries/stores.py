"""Where persisted query documents live: an in-process LRU, Redis, or an allow-list file.

Automatic persisted queries (Apollo's APQ protocol) let clients send a SHA-256
hash instead of the whole document; the first time, the server answers
``PersistedQueryNotFound`` and the client sends hash and document together,
which registers it. The allow-list is the strict variant: only the documents of
a reviewed file ever run.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

import structlog
from redis import asyncio as redis
from redis.exceptions import RedisError

from graphql_api.platform.resilience import CircuitBreaker

log = structlog.get_logger(__name__)


def document_hash(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


class PersistedQueryStore(Protocol):
    async def get(self, sha256: str) -> str | None: ...

    async def put(self, sha256: str, document: str) -> None: ...


class MemoryStore:
    """The ``max_entries`` most recently used documents of this process."""

    def __init__(self, max_entries: int = 1000) -> None:
        self._documents: OrderedDict[str, str] = OrderedDict()
        self._max_entries = max_entries

    async def get(self, sha256: str) -> str | None:
        document = self._documents.get(sha256)
        if document is not None:
            self._documents.move_to_end(sha256)
        return document

    async def put(self, sha256: str, document: str) -> None:
        self._documents[sha256] = document
        self._documents.move_to_end(sha256)
        while len(self._documents) > self._max_entries:
            self._documents.popitem(last=False)


class RedisStore:
    """Documents shared by every process through Redis, with a local LRU in front.

    Redis being down only costs a round trip for the client: a miss makes it
    resend the full document, which still runs (and is cached locally).
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        ttl_seconds: int,
        key_prefix: str = "quantgraph:",
        local: MemoryStore | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._prefix = f"{key_prefix}apq:"
        self._local = local or MemoryStore()
        self._breaker = breaker or CircuitBreaker("redis")

    async def get(self, sha256: str) -> str | None:
        document = await self._local.get(sha256)
        if document is not None or not self._breaker.allow():
            return document
        try:
            raw = await self._client.get(self._prefix + sha256)
        except (RedisError, OSError) as error:
            self._breaker.record_failure()
            log.warning("persisted query store unavailable", error=str(error))
            return None
        self._breaker.record_success()
        if raw is None:
            return None
        document = raw.decode() if isinstance(raw, bytes) else str(raw)
        await self._local.put(sha256, document)
        return document

    async def put(self, sha256: str, document: str) -> None:
        await self._local.put(sha256, document)
        if not self._breaker.allow():
            return
        try:
            await self._client.set(self._prefix + sha256, document, ex=self._ttl)
        except (RedisError, OSError) as error:
            self._breaker.record_failure()
            log.warning("persisted query store unavailable", error=str(error))
        else:
            self._breaker.record_success()


class AllowListError(ValueError):
    pass


def load_allowlist(path: Path) -> dict[str, str]:
    """``{sha256: document}`` from an Apollo persisted query manifest or a plain mapping.

    Accepted shapes: ``{"format": "apollo-persisted-query-manifest", "operations":
    [{"id": sha256, "body": document, ...}]}``, ``{sha256: document}``, or a list
    of documents. Every id must be the SHA-256 of its document.
    """
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise AllowListError(f"cannot read the allow-list {path}: {error}") from error
    entries: list[tuple[object, object]]
    if isinstance(raw, dict) and isinstance(raw.get("operations"), list):
        operations = [op if isinstance(op, dict) else {} for op in raw["operations"]]
        entries = [(op.get("id"), op.get("body")) for op in operations]
    elif isinstance(raw, dict):
        entries = list(raw.items())
    elif isinstance(raw, list):
        entries = [(None, document) for document in raw]
    else:
        raise AllowListError(f"{path}: expected a manifest, a mapping or a list of documents")
    documents: dict[str, str] = {}
    for given, document in entries:
        if not isinstance(document, str):
            raise AllowListError(f"{path}: every document must be a string")
        digest = document_hash(document)
        if given is not None and given != digest:
            raise AllowListError(f"{path}: id {given} is not the SHA-256 of its document")
        documents[digest] = document
    return documents
