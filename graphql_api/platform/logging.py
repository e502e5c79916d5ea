"""Structured logs: JSON lines in production, readable key=value in development."""

from __future__ import annotations

import logging

import structlog


def level_number(level: str) -> int:
    """``LOG_LEVEL``'s name as the logging module's number (INFO for a name it lacks)."""
    return logging.getLevelNamesMapping().get(level.upper(), logging.INFO)


def configure_logging(level: str, *, json: bool) -> None:
    numeric = level_number(level)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=True,
    )
