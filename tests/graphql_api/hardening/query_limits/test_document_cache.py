"""The document cache on its own: its bounds, its order, and copies of errors."""

from __future__ import annotations

from graphql import GraphQLError, build_schema, parse, specified_rules, validate

from graphql_api.hardening.persisted_queries.stores import document_hash
from graphql_api.hardening.query_limits.document_cache import (
    DocumentCache,
    copy_error,
    document_digest,
)

SCHEMA = build_schema("type Query { a: Int, b: String }")
RULES = tuple(specified_rules)


def put(cache: DocumentCache, text: str, max_tokens: int | None = 100) -> str:
    digest, size = document_digest(text)
    cache.put(digest, size, parse(text), max_tokens)
    return digest


def test_digest_is_the_persisted_query_hash() -> None:
    digest, size = document_digest("{ a }")
    assert digest == document_hash("{ a }")
    assert size == 5
    assert document_digest("{ é }")[1] == 6  # UTF-8 bytes, not characters


def test_least_recently_used_goes_first() -> None:
    cache = DocumentCache(max_entries=2, max_bytes=10_000)
    first, second = put(cache, "{ a }"), put(cache, "{ b }")
    assert cache.get(first, 100) is not None  # first is now the most recent
    third = put(cache, "{ a b }")
    assert cache.get(second, 100) is None
    assert cache.get(first, 100) is not None and cache.get(third, 100) is not None
    assert (len(cache), cache.evictions, cache.hits, cache.misses) == (2, 1, 3, 1)


def test_bytes_are_bounded() -> None:
    cache = DocumentCache(max_entries=100, max_bytes=12)
    put(cache, "{ a }")
    put(cache, "{ b }")
    assert (len(cache), cache.bytes) == (2, 10)
    put(cache, "{ a b }")  # 7 bytes: the oldest goes to stay within 12
    assert (len(cache), cache.bytes) == (2, 12)
    put(cache, "{ a b a }")  # 9 bytes: both others go
    assert (len(cache), cache.bytes) == (1, 9)
    big = put(cache, "{ a b a b a b }")  # larger than the whole bound: not kept
    assert cache.get(big, 100) is None
    assert (len(cache), cache.bytes) == (1, 9)


def test_a_document_parsed_under_another_token_limit_is_a_miss() -> None:
    cache = DocumentCache()
    digest = put(cache, "{ a }", max_tokens=100)
    assert cache.get(digest, 5) is None
    assert cache.get(digest, 100) is not None


def test_nothing_is_kept_when_off() -> None:
    for cache in (DocumentCache(max_entries=0), DocumentCache(max_bytes=0)):
        assert not cache.enabled
        digest = put(cache, "{ a }")
        assert len(cache) == 0 and cache.get(digest, 100) is None


def test_validation_is_known_only_for_the_same_schema_and_rules() -> None:
    cache = DocumentCache()
    digest, size = document_digest("{ a nope }")
    document = parse("{ a nope }")
    entry = cache.put(digest, size, document, 100)
    errors = validate(SCHEMA, document, RULES)
    entry.remember_validation(SCHEMA, RULES, errors)
    known = entry.validation_errors(SCHEMA, RULES)
    assert known is not None
    assert [error.formatted for error in known] == [error.formatted for error in errors]
    assert entry.validation_errors(SCHEMA, RULES[:-1]) is None
    assert entry.validation_errors(build_schema("type Query { a: Int }"), RULES) is None


def test_each_request_gets_its_own_errors() -> None:
    document = parse("{\n  a\n  nope\n}")
    [original] = validate(SCHEMA, document, RULES)
    copied = copy_error(original)
    assert copied is not original and type(copied) is type(original)
    assert copied.formatted == original.formatted
    assert copied.locations == original.locations and copied.nodes == original.nodes
    # an extension tagging the copy's code leaves the original as it was
    assert copied.extensions is not None
    copied.extensions["code"] = "GRAPHQL_VALIDATION_FAILED"
    assert "code" not in (original.extensions or {})
    assert str(copied) == str(original)


def test_copies_keep_extensions_and_subclasses() -> None:
    class AbortedError(GraphQLError):
        pass

    original = AbortedError("too much", extensions={"code": "QUERY_TOO_COMPLEX", "maximum": 3})
    copied = copy_error(original)
    assert isinstance(copied, AbortedError)
    assert copied.formatted == original.formatted
    assert copied.extensions is not original.extensions
