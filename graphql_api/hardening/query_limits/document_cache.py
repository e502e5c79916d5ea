"""Parsed documents and their validation, kept per document text.

A frontend sends the same few dozen documents all day; parsing one and running
graphql-core's validation rules over it is most of what a small query costs
before its resolvers run. Both depend only on the text (and, for validation, on
the schema and the rules), so :class:`DocumentCache` keeps them in a bounded LRU
keyed by the SHA-256 of the text, the hash automatic persisted queries use.

What a document *costs* depends on the request's variables (``first: $n``), so
the cost is never cached: :class:`~graphql_api.hardening.query_limits.guard.DocumentLimits`
prices the cached tree against each request's variables. The document's shape
(fields, aliases, depth, nesting) is cached, but the verdict is not: the limits
compare it on every request, so a document over a limit is refused whether it
was parsed just now or long ago.

Why not Strawberry's ``ParserCache`` and ``ValidationCache``: they are
``functools.lru_cache`` wrappers shared by every schema of the process and
bounded by a count only (a few thousand-token documents then hold a lot of
memory); the validation one overwrites whatever errors an earlier extension set,
so it would replace the query limits' refusals; and it hands every request the
same error objects, which the error-code extension then edits in place. This
cache belongs to one app, is bounded in entries *and* document bytes, never
runs before the limits, and gives each request its own copies of the errors.

Syntax errors are not cached: the parser stops at the first bad token (or at
the token limit), so refusing such a document again costs about what a lookup
does, and junk never evicts the documents that run.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from graphql import DocumentNode, GraphQLError, GraphQLSchema, parse

from graphql_api.hardening.query_limits.document_shape import Shape

# Field names every GraphQLError keeps its state in (it has __slots__ and no __dict__).
_ERROR_SLOTS: tuple[str, ...] = GraphQLError.__slots__


def document_digest(text: str) -> tuple[str, int]:
    """The SHA-256 (hex, as APQ has it) of ``text`` and its size in UTF-8 bytes."""
    data = text.encode()
    return hashlib.sha256(data).hexdigest(), len(data)


MAX_KNOWN_COSTS = 8
"""Costs a cached document keeps: one per operation name a client sends with it,
so a client inventing names cannot grow it."""


@dataclass(slots=True)
class CachedDocument:
    """One document's parse, and what has been learned about it so far.

    Parameters:
    document: graphql-core's tree, shared by every request that sends the text
        (nothing in graphql-core or here changes a tree once parsed).
    size: the text's length in UTF-8 bytes, what the byte bound counts.
    max_tokens: the token limit it was parsed under; another limit parses again.
    shape: ``(cap, shape)`` once the query limits have measured it.
    validation: ``(schema, rules, errors)`` once graphql-core has validated it.
    costs: operation costs that no variable goes into, by (schema, operation name,
        list size); a few at most (:data:`MAX_KNOWN_COSTS`).
    """

    document: DocumentNode
    size: int
    max_tokens: int | None
    shape: tuple[int, Shape] | None = None
    validation: tuple[GraphQLSchema, tuple[Any, ...], tuple[GraphQLError, ...]] | None = None
    costs: dict[tuple[GraphQLSchema, str | None, int], int] = field(default_factory=dict)

    def remember_validation(
        self, schema: GraphQLSchema, rules: tuple[Any, ...], errors: Sequence[GraphQLError]
    ) -> None:
        # Copies: the request that validated goes on to tag its errors in place.
        self.validation = (schema, rules, tuple(copy_error(error) for error in errors))

    def known_valid(self, schema: GraphQLSchema, rules: tuple[Any, ...]) -> bool:
        """Did validation with these rules find nothing wrong?"""
        known = self.validation
        if known is None or known[0] is not schema or known[2]:
            return False
        return known[1] is rules or known[1] == rules

    def validation_errors(
        self, schema: GraphQLSchema, rules: tuple[Any, ...]
    ) -> list[GraphQLError] | None:
        """Fresh copies of the errors validation gave with these rules, None if not known."""
        known = self.validation
        if known is None or known[0] is not schema or known[1] != rules:
            return None
        return [copy_error(error) for error in known[2]]


class DocumentCache:
    """A bounded LRU of parsed documents, keyed by the SHA-256 of their text.

    Parameters:
    max_entries: documents kept; 0 keeps none (the cache is then off).
    max_bytes: total UTF-8 size of the kept documents' text. A parsed tree takes
        some 50 to 150 times its text in memory, so this bounds the cache's
        memory where a count alone would not (documents of the token limit are
        a thousand times larger than ``{ __typename }``).

    One cache serves one app (one schema, one set of query limits); HTTP and
    WebSocket operations share it. Not thread-safe: it lives on the event loop.
    """

    def __init__(self, max_entries: int = 1000, max_bytes: int = 500_000) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, CachedDocument] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        # Requests whose parsing and validation were skipped whole (prepared operations).
        self.prepared = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0 and self.max_bytes > 0

    def get(self, digest: str, max_tokens: int | None) -> CachedDocument | None:
        """The entry for ``digest`` parsed under ``max_tokens``, now the most recent."""
        entry = self._entries.get(digest)
        if entry is None or entry.max_tokens != max_tokens:
            self.misses += 1
            return None
        self._entries.move_to_end(digest)
        self.hits += 1
        return entry

    def peek(self, digest: str, max_tokens: int | None) -> CachedDocument | None:
        """The entry for ``digest`` parsed under ``max_tokens``, counted and made the most
        recent only by :meth:`hit` (a caller that may not use it leaves no trace)."""
        entry = self._entries.get(digest)
        return None if entry is None or entry.max_tokens != max_tokens else entry

    def hit(self, digest: str) -> None:
        """Count a :meth:`peek` that was used as a :meth:`get` would have."""
        self._entries.move_to_end(digest)
        self.hits += 1

    def put(
        self, digest: str, size: int, document: DocumentNode, max_tokens: int | None
    ) -> CachedDocument:
        """Keep ``document`` (unless it alone is over the byte bound); return its entry."""
        entry = CachedDocument(document, size, max_tokens)
        if not self.enabled or size > self.max_bytes:
            return entry  # used for this request only
        old = self._entries.pop(digest, None)
        if old is not None:
            self.bytes -= old.size
        self._entries[digest] = entry
        self.bytes += size
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.bytes -= evicted.size
            self.evictions += 1
        return entry

    def parse(self, text: str, max_tokens: int | None) -> DocumentNode:
        """``text`` parsed, from the cache or now (then kept); a syntax error raises
        graphql-core's GraphQLError, as ``graphql.parse`` does.

        For callers outside Strawberry's execution (the WebSocket protocol deciding
        how to run an operation); the execution itself goes through the query limits.
        """
        digest, size = document_digest(text)
        entry = self.get(digest, max_tokens)
        if entry is not None:
            return entry.document
        document = parse(text, max_tokens=max_tokens)
        self.put(digest, size, document, max_tokens)
        return document


def copy_error(error: GraphQLError) -> GraphQLError:
    """A copy of ``error`` that formats identically and has its own ``extensions``.

    ``copy.copy`` loses a GraphQLError's state (it keeps it in ``__slots__``,
    which ``BaseException.__reduce__`` ignores); calling the constructor again
    would recompute the locations.
    """
    cls = type(error)
    copied = cls.__new__(cls)
    Exception.__init__(copied, *error.args)
    for slot in _ERROR_SLOTS:
        setattr(copied, slot, getattr(error, slot))
    copied.extensions = dict(error.extensions or {})
    if hasattr(error, "__dict__"):  # a subclass without __slots__
        copied.__dict__.update(error.__dict__)
    copied.__cause__ = error.__cause__
    return copied


__all__ = ["CachedDocument", "DocumentCache", "copy_error", "document_digest"]
