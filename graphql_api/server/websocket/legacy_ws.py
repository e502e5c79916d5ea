"""The legacy graphql-ws handler: Strawberry's, with shared subscriptions, an init
timeout and limits (see :mod:`graphql_api.server.websocket`)."""

from __future__ import annotations

import asyncio
import functools
from datetime import timedelta
from typing import Any

from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ConnectionInitMessage as LegacyConnectionInitMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.types import OperationMessage

from graphql_api.server.websocket.connection import Connection
from graphql_api.server.websocket.documents import is_query_or_mutation
from graphql_api.server.websocket.keep_alive import close_unless_initialised
from graphql_api.server.websocket.messages import TOO_MANY_CONNECTIONS, TOO_MANY_CONNECTIONS_REASON
from resolvers.context import Context


class MultiplexLegacyWSHandler(BaseGraphQLWSHandler[Context, None]):
    """Legacy graphql-ws with shared subscriptions, an init timeout and limits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.realtime = Connection(self, legacy=True)

    async def handle(self) -> None:
        wait: timedelta = self.view.connection_init_wait_timeout
        self.realtime.spawn(close_unless_initialised(self, wait.total_seconds()))
        try:
            await super().handle()
        finally:
            self.realtime.release()

    async def handle_message(self, message: OperationMessage) -> None:
        if self.realtime.refused:
            return
        await super().handle_message(message)

    async def handle_connection_init(self, message: LegacyConnectionInitMessage) -> None:
        await self.realtime.connection_init(
            functools.partial(super().handle_connection_init, message)
        )

    async def send_message(self, message: OperationMessage) -> None:
        if message["type"] == "connection_ack" and not self.realtime.admit():
            await super().send_message(
                {"type": "connection_error", "payload": {"message": TOO_MANY_CONNECTIONS_REASON}}
            )
            await self.websocket.close(TOO_MANY_CONNECTIONS, TOO_MANY_CONNECTIONS_REASON)
            return
        if self.realtime.refused:
            return
        await super().send_message(message)

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        realtime = self.realtime
        task = asyncio.current_task()
        if realtime.refused or realtime.closing:
            if self.tasks.get(operation_id) is task:
                del self.tasks[operation_id]
            return  # the socket is being closed: nothing more is started on it
        if is_query_or_mutation(
            query, operation_name, realtime.query_limits, realtime.document_cache
        ):
            await self._answer_once(operation_id, query, operation_name, variables)
            return
        plan = realtime.shared.plan(query, variables, operation_name)
        if plan is None:
            await super().handle_async_results(operation_id, query, operation_name, variables)
            return
        try:
            failure = await realtime.shared.run(plan, operation_id)
            realtime.shared.send_terminal(operation_id, failure)
        except asyncio.CancelledError:
            # Stopped by the client: like Strawberry, confirm with ``complete``.
            realtime.discard_queued(operation_id)
            realtime.shared.send_terminal(operation_id, None)
            raise
        finally:
            if self.tasks.get(operation_id) is task:
                del self.tasks[operation_id]

    async def _answer_once(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        """A query or mutation: one ``data`` message, then ``complete``.

        subscriptions-transport-ws carried them too, but Strawberry's legacy
        handler only subscribes, which refuses them with an exception.
        """
        task = asyncio.current_task()
        try:
            result = await self.schema.execute(
                query,
                variable_values=variables,
                context_value=self.context,
                root_value=self.root_value,
                operation_name=operation_name,
            )
            await self.send_data_message(result, operation_id)
            await self.send_message({"type": "complete", "id": operation_id})
        except asyncio.CancelledError:
            await self.send_message({"type": "complete", "id": operation_id})
            raise
        finally:
            if self.tasks.get(operation_id) is task:
                del self.tasks[operation_id]

    def end_operations(self) -> list[asyncio.Task[Any]]:
        """For shutdown: end every operation; each sends ``complete`` (Strawberry's on cancel)."""
        tasks = list(self.tasks.values())
        for op_id, task in list(self.tasks.items()):
            if op_id in self.realtime.shared:
                self.realtime.shared.end(op_id)
            else:
                task.cancel()
        return tasks
