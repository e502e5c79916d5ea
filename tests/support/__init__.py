"""Test infrastructure: real servers, a GraphQL-over-WebSocket client, helpers."""
