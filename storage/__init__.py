"""Persistence: SQLAlchemy models, engine setup, repositories and time-series stores.

Nothing in this package imports from the layers above it (services, loaders,
resolvers, schema); it speaks in ORM rows and plain dataclasses.
"""
