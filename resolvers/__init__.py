"""Thin resolvers: read the context, call a service or a loader, return rows.

Mapping rows to GraphQL types happens in ``schema`` (which imports this
package), so the import direction stays ``resolvers`` ← ``schema``.
"""
