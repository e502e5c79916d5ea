"""Persisted queries: Apollo's automatic persisted queries and the allow-list mode.
Stores (in-process LRU, Redis, allow-list file) and the extension that reads them."""
