"""quantgraph's application layer: settings, the app factory and the domain services.

Domain modules here never import Strawberry, ``schema`` or ``resolvers``.
"""
