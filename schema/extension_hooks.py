"""Strawberry's schema-extension lifecycle, with each hook looked up once per class.

For every request Strawberry's :class:`SchemaExtensionsRunner` builds four
context managers (operation, parsing, validation, executing), and each asks
every extension whether it has the hook: ``getattr`` on the class, ``inspect``
of the function, then a fresh ``contextlib.contextmanager`` around the bound
method, which copies its metadata with ``functools.update_wrapper``. With the
app's ten extensions that is forty look-ups and sixteen wrappers per request,
about a third of what ``{ __typename }`` costs in Python. What they find depends
only on the extension's class, so here it is found once per class and kept; per
request only the extension's own generator is started, and driven directly
(see :class:`Stage`).

The lifecycle is unchanged: the hooks run in the order of the extensions, each
entered on one exit stack and left in reverse order, an async hook in a sync
execution is refused with Strawberry's message, and a stage no extension hooks
costs nothing.
"""

from __future__ import annotations

import contextlib
import enum
import inspect
from collections.abc import Callable
from types import TracebackType
from typing import Any, NamedTuple

from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.types import ExecutionContext
from strawberry.utils.await_maybe import await_maybe


class HookKind(enum.Enum):
    """How a hook is written, which decides how a stage starts and leaves it."""

    GENERATOR = "generator"
    ASYNC_GENERATOR = "async generator"
    FUNCTION = "function"  # runs on entry; nothing on the way out
    COROUTINE = "coroutine function"  # awaited on entry; nothing on the way out


class ClassHook(NamedTuple):
    """How one extension class hooks one stage: its function and how it is written."""

    function: Callable[[SchemaExtension], Any]
    kind: HookKind

    @property
    def is_async(self) -> bool:
        return self.kind in (HookKind.ASYNC_GENERATOR, HookKind.COROUTINE)


_FOUND: dict[tuple[type[SchemaExtension], str], ClassHook | None] = {}


def class_hook(extension_type: type[SchemaExtension], stage: str) -> ClassHook | None:
    """``extension_type``'s hook for ``stage`` (``on_operation``, …) as Strawberry reads
    it: a generator, an async generator, or a plain (async) function run on entry;
    None when the class keeps :class:`SchemaExtension`'s default. Found once per class
    (extension classes are few and defined once)."""
    key = (extension_type, stage)
    if key not in _FOUND:
        _FOUND[key] = _find_hook(extension_type, stage)
    return _FOUND[key]


_PLANS: dict[tuple[tuple[type[SchemaExtension], ...], str], list[tuple[int, ClassHook]]] = {}


def stage_plan(
    extension_types: tuple[type[SchemaExtension], ...], stage: str
) -> list[tuple[int, ClassHook]]:
    """Which of a request's extensions (by position) hook ``stage``, and how. A
    schema's requests all have the same extension classes in the same order, so
    this is worked out once per schema and stage."""
    key = (extension_types, stage)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS[key] = [
            (index, hook)
            for index, extension_type in enumerate(extension_types)
            if (hook := class_hook(extension_type, stage)) is not None
        ]
    return plan


_RESULTS: dict[tuple[type[SchemaExtension], ...], list[int]] = {}


def results_plan(extension_types: tuple[type[SchemaExtension], ...]) -> list[int]:
    """The positions of the extensions whose class overrides ``get_results`` (the
    default answers an empty dict, which adds nothing): once per schema."""
    plan = _RESULTS.get(extension_types)
    if plan is None:
        plan = _RESULTS[extension_types] = [
            index
            for index, extension_type in enumerate(extension_types)
            if extension_type.get_results is not SchemaExtension.get_results
        ]
    return plan


def _find_hook(extension_type: type[SchemaExtension], stage: str) -> ClassHook | None:
    function = getattr(extension_type, stage)
    if function is getattr(SchemaExtension, stage):
        return None
    if inspect.isgeneratorfunction(function):
        return ClassHook(function, HookKind.GENERATOR)
    if inspect.isasyncgenfunction(function):
        return ClassHook(function, HookKind.ASYNC_GENERATOR)
    if inspect.iscoroutinefunction(function):
        return ClassHook(function, HookKind.COROUTINE)
    if callable(function):
        return ClassHook(function, HookKind.FUNCTION)
    raise ValueError(f"Hook {stage} on {extension_type} must be callable, received {function!r}")


def _started(generator: Any) -> Any:
    return generator


# contextlib's own managers around a generator that is already past its ``yield``:
# their ``__exit__``/``__aexit__`` are what leaving it means (see Stage).
_resume_generator = contextlib.contextmanager(_started)
_resume_async_generator = contextlib.asynccontextmanager(_started)


class Stage:
    """One lifecycle stage of one request: every extension's hook for it, nested.

    The hooks' generators are driven directly (``next``/``anext``) on the way in
    and, when nothing fails, on the way out: that is all ``contextlib`` would do
    for them, without a context manager and an exit stack per hook. As soon as
    an exception is involved (one leaving the stage's body, or one a hook raises
    on its way out), the hooks still open are handed to an ``ExitStack`` as
    contextlib's own managers, so suppression, re-raising and exception context
    are exactly what ``contextlib`` (and so Strawberry's runner) gives.

    One departure from Strawberry's runner: when a hook fails on its way *in* (a
    persisted query that is not found, a refused execution), the hooks already
    entered leave with that exception at once, as on an exit stack. Strawberry
    leaves them open until the collector frees their generators, so the
    operation metrics never counted such a refusal.
    """

    __slots__ = ("_hooks", "_open", "name")

    def __init__(self, extensions: list[SchemaExtension], name: str) -> None:
        self.name = name
        plan = stage_plan(tuple(map(type, extensions)), name)
        self._hooks = [(hook, extensions[index]) for index, hook in plan]
        # The generators entered, outermost first, with whether each is async.
        self._open: list[tuple[Any, bool]] = []

    async def __aenter__(self) -> None:
        try:
            for hook, extension in self._hooks:
                kind = hook.kind
                if kind is HookKind.GENERATOR:
                    self._open.append((_entered(hook.function(extension)), False))
                elif kind is HookKind.ASYNC_GENERATOR:
                    generator = hook.function(extension)
                    try:
                        await anext(generator)
                    except StopAsyncIteration:
                        raise RuntimeError("generator didn't yield") from None
                    self._open.append((generator, True))
                elif kind is HookKind.COROUTINE:
                    await hook.function(extension)
                else:
                    hook.function(extension)
        except BaseException as error:
            # A hook refused on its way in: the hooks already entered leave with its
            # exception, as an exit stack's would (see the class docstring).
            await _leave_async(self._open, type(error), error, error.__traceback__)
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        opened = self._open
        if exc_type is None:
            while opened:
                generator, is_async = opened.pop()
                try:
                    if is_async:
                        await anext(generator)
                    else:
                        next(generator)
                except (StopIteration, StopAsyncIteration):
                    continue
                except BaseException as error:
                    failure = error
                else:
                    failure = await _did_not_stop(generator, is_async)
                # The hooks still open leave with the failure, as on an exit stack.
                if not await _leave_async(opened, type(failure), failure, failure.__traceback__):
                    raise failure
                return None
            return None
        exc = exc_val if exc_val is not None else exc_type()
        return await _leave_async(opened, exc_type, exc, exc_tb)

    def __enter__(self) -> None:
        try:
            for hook, extension in self._hooks:
                if hook.is_async:
                    raise RuntimeError(
                        f"SchemaExtension hook {extension}.{self.name} "
                        "failed to complete synchronously."
                    )
                if hook.kind is HookKind.GENERATOR:
                    self._open.append((_entered(hook.function(extension)), False))
                else:
                    hook.function(extension)
        except BaseException as error:
            _leave_sync(self._open, type(error), error, error.__traceback__)
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        opened = self._open
        if exc_type is None:
            while opened:
                generator, _ = opened.pop()
                try:
                    next(generator)
                except StopIteration:
                    continue
                except BaseException as error:
                    failure = error
                else:
                    generator.close()
                    failure = RuntimeError("generator didn't stop")
                if not _leave_sync(opened, type(failure), failure, failure.__traceback__):
                    raise failure
                return None
            return None
        exc = exc_val if exc_val is not None else exc_type()
        return _leave_sync(opened, exc_type, exc, exc_tb)


def _entered(generator: Any) -> Any:
    """A hook's generator run to its ``yield``, as contextlib enters it."""
    try:
        next(generator)
    except StopIteration:
        raise RuntimeError("generator didn't yield") from None
    return generator


async def _did_not_stop(generator: Any, is_async: bool) -> RuntimeError:
    """What contextlib raises for a hook that yields twice (after closing it)."""
    if is_async:
        await generator.aclose()
    else:
        generator.close()
    return RuntimeError("generator didn't stop")


async def _leave_async(
    opened: list[tuple[Any, bool]],
    exc_type: type[BaseException],
    exc: BaseException,
    tb: TracebackType | None,
) -> bool:
    """Leave the open hooks with ``exc`` as an ``AsyncExitStack`` of contextlib's
    managers does: True when one of them suppressed it."""
    stack = contextlib.AsyncExitStack()
    for generator, is_async in opened:
        if is_async:
            stack.push_async_exit(_resume_async_generator(generator))
        else:
            stack.push(_resume_generator(generator))
    opened.clear()
    return bool(await stack.__aexit__(exc_type, exc, tb))


def _leave_sync(
    opened: list[tuple[Any, bool]],
    exc_type: type[BaseException],
    exc: BaseException,
    tb: TracebackType | None,
) -> bool:
    """:func:`_leave_async` for a synchronous stage (every hook is a generator)."""
    stack = contextlib.ExitStack()
    for generator, _ in opened:
        stack.push(_resume_generator(generator))
    opened.clear()
    return bool(stack.__exit__(exc_type, exc, tb))


class CachedHooksRunner(SchemaExtensionsRunner):
    """:class:`SchemaExtensionsRunner` whose stages use :func:`class_hook`, and whose
    extension results ask only the extensions that give any (:func:`results_plan`)."""

    def operation(self) -> Stage:  # type: ignore[override]
        return Stage(self.extensions, "on_operation")

    def validation(self) -> Stage:  # type: ignore[override]
        return Stage(self.extensions, "on_validate")

    def parsing(self) -> Stage:  # type: ignore[override]
        return Stage(self.extensions, "on_parse")

    def executing(self) -> Stage:  # type: ignore[override]
        return Stage(self.extensions, "on_execute")

    def get_extensions_results_sync(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for index in results_plan(tuple(map(type, self.extensions))):
            extension = self.extensions[index]
            if inspect.iscoroutinefunction(extension.get_results):
                raise RuntimeError("Cannot use async extension hook during sync execution")
            data.update(extension.get_results())  # type: ignore[arg-type]
        return data

    async def get_extensions_results(self, ctx: ExecutionContext) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for index in results_plan(tuple(map(type, self.extensions))):
            data.update(await await_maybe(self.extensions[index].get_results()))
        data.update(ctx.extensions_results)
        return data
