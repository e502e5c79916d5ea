"""Extension hooks found once per class run exactly like Strawberry's own runner.

The same schema is run with Strawberry's :class:`SchemaExtensionsRunner` and with
:class:`CachedHooksRunner`; every hook form (generator, async generator, plain and
coroutine functions, the default) records when it is entered and left, and the two
runs must record the same events and return the same result, for a good query, a
field error, a parse error, a hook that fails on its way in, and hooks that
fail, are caught, suppress or yield twice on their way out. The one departure:
when a hook fails on its way in, the hooks entered before it leave with its
exception at once (Strawberry's runner leaves them open until the collector frees
them).
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.types import ExecutionContext

from schema.extension_hooks import CachedHooksRunner, Stage, class_hook

EVENTS: list[str] = []


class Generators(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        EVENTS.append("generator operation in")
        yield
        EVENTS.append(f"generator operation out errors={self._errors()}")

    def on_execute(self) -> Iterator[None]:
        EVENTS.append("generator execute in")
        try:
            yield
        finally:
            EVENTS.append("generator execute out")

    def _errors(self) -> int:
        result = self.execution_context.result
        return len(result.errors or []) if result is not None else -1


class AsyncGenerators(SchemaExtension):
    async def on_operation(self) -> AsyncIterator[None]:
        EVENTS.append("async operation in")
        yield
        EVENTS.append("async operation out")

    async def on_validate(self) -> AsyncIterator[None]:
        EVENTS.append("async validate in")
        yield
        EVENTS.append("async validate out")


class Functions(SchemaExtension):
    def on_parse(self) -> None:  # type: ignore[override]
        EVENTS.append(f"function parse {self.execution_context.query}")

    async def on_execute(self) -> None:  # type: ignore[override]
        EVENTS.append("coroutine execute")


class FailsOnExecute(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        if self.execution_context.operation_name == "Refused":
            raise ValueError("refused by an extension")
        yield


class LeavesUnusually(SchemaExtension):
    """The innermost operation hook: fails, or yields twice, on its way out."""

    def on_operation(self) -> Iterator[None]:
        name = self.execution_context.operation_name
        yield
        if name in ("Leaving", "Swallowed", "Replaced"):
            raise ValueError(f"{name} on the way out")
        if name == "Twice":
            yield


class CatchesOnLeaving(SchemaExtension):
    """The outermost operation hook (async): sees what inner hooks raise on their way out."""

    async def on_operation(self) -> AsyncIterator[None]:
        try:
            yield
        except ValueError as error:
            EVENTS.append(f"caught {error}")
            name = self.execution_context.operation_name
            if name == "Replaced":
                raise KeyError("replaced") from error
            if name != "Swallowed":
                raise
        except RuntimeError as error:
            EVENTS.append(f"caught {error}")
            raise
        finally:
            EVENTS.append("catcher out")


class Results(SchemaExtension):
    def get_results(self) -> dict[str, Any]:
        return {"first": self.execution_context.operation_name, "both": "sync"}


class AsyncResults(SchemaExtension):
    """After :class:`Results`: its ``both`` wins."""

    async def get_results(self) -> dict[str, Any]:
        return {"second": 2, "both": "async"}


class NotesResults(SchemaExtension):
    """Writes the context's results, which come after every extension's own."""

    def on_execute(self) -> Iterator[None]:
        self.execution_context.extensions_results["both"] = "noted"
        yield


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        return "world"

    @strawberry.field
    def broken(self) -> str:
        raise ValueError("no")


class StockSchema(strawberry.Schema):
    pass


class CachedSchema(strawberry.Schema):
    def create_extensions_runner(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension]
    ) -> SchemaExtensionsRunner:
        return CachedHooksRunner(execution_context=execution_context, extensions=extensions)


EXTENSIONS = [CatchesOnLeaving, Generators, AsyncGenerators, Functions, FailsOnExecute]
EXTENSIONS += [LeavesUnusually, Results, AsyncResults, NotesResults]


async def run(
    schema_type: type[strawberry.Schema],
    query: str,
    name: str | None,
    extensions: list[type[SchemaExtension]] = EXTENSIONS,
) -> Any:
    schema = schema_type(query=Query, extensions=extensions)
    # A hook left open by an earlier run (an exception's traceback keeps its frame)
    # records its finally block when the collector frees it: not during this run.
    gc.collect()
    EVENTS.clear()
    try:
        result = await schema.execute(query, operation_name=name)
        errors = [error.message for error in result.errors or []]
        outcome: Any = (result.data, errors, result.extensions)
    except Exception as error:
        outcome = ("raised", type(error).__name__, str(error), repr(error.__context__))
    return outcome, list(EVENTS)


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("query Fine { hello }", None),
        ("query Fine { hello broken }", None),
        ("query Fine { hello", None),
        ("query Fine { nope }", None),
        ("query Refused { hello }", "Refused"),
        ("query Leaving { hello }", "Leaving"),
        ("query Swallowed { hello }", "Swallowed"),
        ("query Replaced { hello }", "Replaced"),
        ("query Twice { hello }", "Twice"),
    ],
)
async def test_the_cached_runner_runs_every_hook_as_strawberry_does(
    query: str, name: str | None
) -> None:
    stock = await run(StockSchema, query, name)
    cached = await run(CachedSchema, query, name)
    if name == "Refused":
        # The one departure: the hooks entered before one that fails on its way in
        # leave with its exception at once; Strawberry's stay open until collected.
        outcome, events = stock
        at = events.index("coroutine execute") + 1
        assert "generator execute out" not in events
        stock = (outcome, [*events[:at], "generator execute out", *events[at:]])
    assert cached == stock
    assert stock[1], "the hooks ran"


def test_hooks_are_found_once_per_class_and_defaults_are_skipped() -> None:
    assert class_hook(Generators, "on_operation") is class_hook(Generators, "on_operation")
    assert class_hook(Generators, "on_validate") is None
    hook = class_hook(AsyncGenerators, "on_validate")
    assert hook is not None and hook.is_async


def test_a_sync_stage_refuses_an_async_hook_like_strawberry() -> None:
    stage = Stage([AsyncGenerators()], "on_operation")
    with pytest.raises(RuntimeError, match="failed to complete synchronously"), stage:
        pass


@pytest.mark.parametrize(
    "extensions", [[Results, NotesResults], [Results, AsyncResults]], ids=["sync", "async"]
)
def test_a_sync_execution_gathers_results_like_strawberry(
    extensions: list[type[SchemaExtension]],
) -> None:
    outcomes: list[Any] = []
    for schema_type in (StockSchema, CachedSchema):
        schema = schema_type(query=Query, extensions=extensions)
        try:
            result = schema.execute_sync("query Fine { hello }")
            outcomes.append((result.data, result.errors, result.extensions))
        except RuntimeError as error:
            outcomes.append(("raised", str(error)))
    assert outcomes[0] == outcomes[1]
