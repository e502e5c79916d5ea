"""Guards in front of the API, each whole with its Strawberry extension: query limits,
rate limits, persisted queries, error codes, HTTP guards, observability and circuit breakers."""
