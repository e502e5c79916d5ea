"""The compiled read path: relational root fields answered by one SQL statement each.

Types declare how their fields read from SQL (:mod:`schema.compiled.declarations`,
re-exported here); :mod:`schema.compiled.planner` turns a root field's selection
into a statement; :mod:`schema.compiled.runner` checks, caches, binds and runs it.
The execution context (:mod:`schema.fast_execution`) calls the runner for each root
field of a query. See docs/compiled_reads.md.
"""

from schema.compiled.declarations import (
    Amount,
    Cash,
    Column,
    Computed,
    Condition,
    Embedded,
    Kind,
    NestedConnection,
    ObjectReads,
    Page,
    RootByKey,
    RootCaller,
    RootConnection,
    RootObject,
    RootRead,
    RootRows,
    SameRow,
    ToMany,
    ToOne,
)

__all__ = [
    "Amount",
    "Cash",
    "Column",
    "Computed",
    "Condition",
    "Embedded",
    "Kind",
    "NestedConnection",
    "ObjectReads",
    "Page",
    "RootByKey",
    "RootCaller",
    "RootConnection",
    "RootObject",
    "RootRead",
    "RootRows",
    "SameRow",
    "ToMany",
    "ToOne",
]
