"""Observability: Prometheus metrics, the ``/metrics`` endpoint and per-operation records.
Also the extension that reports an unavailable dependency as SERVICE_UNAVAILABLE."""
