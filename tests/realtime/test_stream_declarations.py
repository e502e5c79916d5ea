"""Subscription fields declare how the WebSocket transport may share them."""

from __future__ import annotations

from graphql import GraphQLNamedType, GraphQLObjectType, get_named_type

from schema import schema
from schema.streams import StreamSharing, stream_declarations


def test_ticks_are_public_and_conflate_by_symbol_other_streams_are_per_user() -> None:
    declared = stream_declarations(schema)
    assert set(declared) == {"ticks", "watchlistQuotes"}
    assert declared["ticks"].public
    assert declared["ticks"].conflate_by == "symbol"
    # a watchlist is its owner's: shared only between their connections, but a slow
    # socket still skips to the latest quote per symbol
    assert not declared["watchlistQuotes"].public
    assert declared["watchlistQuotes"].conflate_by == "symbol"


def test_every_conflation_key_is_a_field_of_the_events() -> None:
    graphql_schema = schema._schema  # graphql-core's view of the printed types
    subscription = graphql_schema.subscription_type
    assert subscription is not None
    for name, sharing in stream_declarations(schema).items():
        assert isinstance(sharing, StreamSharing)
        if sharing.conflate_by is None:
            continue
        events: GraphQLNamedType = get_named_type(subscription.fields[name].type)
        assert isinstance(events, GraphQLObjectType)
        assert sharing.conflate_by in events.fields, (name, sharing.conflate_by)
