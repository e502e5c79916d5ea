"""Strawberry's schema-extension lifecycle, with each hook looked up once per class.

For every request Strawberry's :class:`SchemaExtensionsRunner` builds four
context managers (operation, parsing, validation, executing), and each asks
every extension whether it has the hook: ``getattr`` on the class, ``inspect``
of the function, then a fresh ``contextlib.contextmanager`` around the bound
method, which copies its metadata with ``functools.update_wrapper``. With the
app's ten extensions that is forty look-ups and sixteen wrappers per request,
about a third of what ``{ __typename }`` costs in Python. What they find depends
only on the extension's class, so here it is found once per class and kept; per
request only the extension's own generator is started.

The lifecycle is unchanged: the hooks run in the order of the extensions, each
entered on one exit stack and left in reverse order, an async hook in a sync
execution is refused with Strawberry's message, and a stage no extension hooks
costs nothing.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import Any, NamedTuple

from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner

Opener = Callable[[SchemaExtension], Any]
"""Opens a hook's context manager for one extension instance."""


class ClassHook(NamedTuple):
    """How one extension class hooks one stage: the opener and whether it is async."""

    open: Opener
    is_async: bool


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


def _find_hook(extension_type: type[SchemaExtension], stage: str) -> ClassHook | None:
    function = getattr(extension_type, stage)
    if function is getattr(SchemaExtension, stage):
        return None
    if inspect.isgeneratorfunction(function):
        return ClassHook(contextlib.contextmanager(function), is_async=False)
    if inspect.isasyncgenfunction(function):
        return ClassHook(contextlib.asynccontextmanager(function), is_async=True)
    if inspect.iscoroutinefunction(function):

        @contextlib.asynccontextmanager
        async def on_entry_async(extension: SchemaExtension) -> AsyncIterator[None]:
            await function(extension)
            yield

        return ClassHook(on_entry_async, is_async=True)
    if callable(function):

        @contextlib.contextmanager
        def on_entry(extension: SchemaExtension) -> Iterator[None]:
            function(extension)
            yield

        return ClassHook(on_entry, is_async=False)
    raise ValueError(f"Hook {stage} on {extension_type} must be callable, received {function!r}")


class Stage:
    """One lifecycle stage of one request: every extension's hook for it, nested."""

    __slots__ = ("_hooks", "_stack", "_sync_stack", "name")

    def __init__(self, extensions: list[SchemaExtension], name: str) -> None:
        self.name = name
        self._hooks = [
            (hook, extension)
            for extension in extensions
            if (hook := class_hook(type(extension), name)) is not None
        ]
        self._stack: contextlib.AsyncExitStack | None = None
        self._sync_stack: contextlib.ExitStack | None = None

    async def __aenter__(self) -> None:
        if not self._hooks:
            return
        stack = self._stack = contextlib.AsyncExitStack()
        await stack.__aenter__()
        for hook, extension in self._hooks:
            if hook.is_async:
                await stack.enter_async_context(hook.open(extension))
            else:
                stack.enter_context(hook.open(extension))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        if self._stack is None:
            return None
        return await self._stack.__aexit__(exc_type, exc_val, exc_tb)

    def __enter__(self) -> None:
        if not self._hooks:
            return
        stack = self._sync_stack = contextlib.ExitStack()
        stack.__enter__()
        for hook, extension in self._hooks:
            if hook.is_async:
                raise RuntimeError(
                    f"SchemaExtension hook {extension}.{self.name} "
                    "failed to complete synchronously."
                )
            stack.enter_context(hook.open(extension))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        if self._sync_stack is None:
            return None
        return self._sync_stack.__exit__(exc_type, exc_val, exc_tb)


class CachedHooksRunner(SchemaExtensionsRunner):
    """:class:`SchemaExtensionsRunner` whose stages use :func:`class_hook`."""

    def operation(self) -> Stage:  # type: ignore[override]
        return Stage(self.extensions, "on_operation")

    def validation(self) -> Stage:  # type: ignore[override]
        return Stage(self.extensions, "on_validate")

    def parsing(self) -> Stage:  # type: ignore[override]
        return Stage(self.extensions, "on_parse")

    def executing(self) -> Stage:  # type: ignore[override]
        return Stage(self.extensions, "on_execute")
