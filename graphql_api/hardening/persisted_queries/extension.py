"""Automatic persisted queries (Apollo's APQ protocol) and the allow-list mode.

A request carries ``extensions.persistedQuery = {"version": 1, "sha256Hash": …}``:

- with the document too: the hash must match it, and the document is registered
  once it has validated;
- without: the registered document runs, or the error ``PersistedQueryNotFound``
  (code ``PERSISTED_QUERY_NOT_FOUND``) tells the client to send it in full.

In allow-list mode only the documents of the list run (by hash or in full);
anything else is ``PERSISTED_QUERY_NOT_IN_LIST`` and nothing is registered.

This is a schema extension rather than HTTP middleware: Strawberry hands it the
request's ``extensions`` over GET, POST and WebSocket alike, and it runs before
parsing, so an unknown hash costs no parse, validation or resolver.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import AsyncIterator, Callable, Mapping

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from graphql_api.hardening.persisted_queries.stores import PersistedQueryStore, document_hash

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class PersistedQueries(SchemaExtension):
    """Parameters:
    store: where APQ documents are registered; None disables APQ registration.
    allowlist: ``{sha256: document}``; when given, nothing else runs.
    """

    def __init__(
        self,
        *,
        store: PersistedQueryStore | None,
        allowlist: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.allowlist = allowlist
        self._register: str | None = None

    async def on_operation(self) -> None:  # type: ignore[override]
        # A coroutine, not an async generator: it has nothing to do on the way out, and
        # Strawberry runs such a hook on entry only (an async generator per request
        # costs the event loop's bookkeeping for it).
        context = self.execution_context
        persisted = (context.operation_extensions or {}).get("persistedQuery")
        if persisted is not None:
            await self._resolve(persisted)
        elif self.allowlist is not None and (
            context.query is None or document_hash(context.query) not in self.allowlist
        ):
            raise _error(
                "Only allow-listed operations may run on this server",
                "PERSISTED_QUERY_NOT_IN_LIST",
            )

    async def on_validate(self) -> AsyncIterator[None]:
        yield
        document, self._register = self._register, None
        valid = not self.execution_context.pre_execution_errors
        if document is not None and self.store is not None and valid:
            await self.store.put(document_hash(document), document)

    async def _resolve(self, persisted: object) -> None:
        context = self.execution_context
        if self.store is None and self.allowlist is None:
            raise _error("PersistedQueryNotSupported", "PERSISTED_QUERY_NOT_SUPPORTED")
        sha256 = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
        version = persisted.get("version") if isinstance(persisted, dict) else None
        if version != 1 or not isinstance(sha256, str) or not _SHA256.match(sha256):
            raise _error(
                "extensions.persistedQuery must be {version: 1, sha256Hash: <64 hex digits>}",
                "BAD_REQUEST",
            )
        if context.query is not None:
            if not hmac.compare_digest(document_hash(context.query), sha256):
                raise _error("provided sha does not match query", "PERSISTED_QUERY_HASH_MISMATCH")
            if self.allowlist is not None:
                if sha256 not in self.allowlist:
                    raise _error(
                        "Only allow-listed operations may run on this server",
                        "PERSISTED_QUERY_NOT_IN_LIST",
                    )
            else:
                self._register = context.query
            return
        document = (
            self.allowlist.get(sha256)
            if self.allowlist is not None
            else await self.store.get(sha256)  # type: ignore[union-attr]
        )
        if document is None:
            if self.allowlist is not None:
                raise _error("PersistedQueryNotInList", "PERSISTED_QUERY_NOT_IN_LIST")
            raise _error("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")
        context.query = document


def _error(message: str, code: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


def persisted_queries(
    store: PersistedQueryStore | None, allowlist: Mapping[str, str] | None = None
) -> Callable[[], SchemaExtension]:
    return lambda: PersistedQueries(store=store, allowlist=allowlist)
