"""quantgraph's application, one package per domain.

``platform`` is the ground floor; ``hardening``, ``realtime`` and ``auth`` stand
on it; then ``market``, ``trading`` and ``strategies`` in that order; ``server``
wires them into a process. Domain packages never import Strawberry, ``server``,
``schema`` or ``resolvers``; ``hardening`` and ``server`` speak GraphQL.
"""
