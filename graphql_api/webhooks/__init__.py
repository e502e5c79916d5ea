"""Webhooks: users' HTTP(S) endpoints that receive their events, signed, retried, logged.

- :mod:`.addresses` refuses URLs and resolved addresses an outbound request must not reach;
- :mod:`.signing` signs a delivery (HMAC-SHA256) and verifies a signature;
- :mod:`.registry` registers and deletes webhooks and enqueues events for them;
- :mod:`.dispatcher` posts the pending deliveries, once per cluster, with retries.

See ``docs/webhooks.md``.
"""
