"""Realtime events: wire format and channel names, the per-process hub and Redis backend.
Also the transactional outbox, live order/signal updates and shared subscription executions."""
