"""The graphql-transport-ws handler: Strawberry's, with shared subscriptions,
server pings and limits (see :mod:`graphql_api.server.websocket`)."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    Message,
)

from graphql_api.server.websocket.connection import Connection
from graphql_api.server.websocket.keep_alive import keep_pinging
from graphql_api.server.websocket.messages import (
    TOO_MANY_CONNECTIONS,
    TOO_MANY_CONNECTIONS_REASON,
    complete_text,
)
from resolvers.context import Context


class MultiplexTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws with shared subscriptions, server pings and limits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.realtime = Connection(self, legacy=False)

    async def handle(self) -> None:
        try:
            await super().handle()
        finally:
            self.realtime.release()

    async def handle_message(self, message: Message) -> None:
        if self.realtime.refused:
            return
        await super().handle_message(message)

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        await self.realtime.connection_init(
            functools.partial(super().handle_connection_init, message)
        )

    async def send_message(self, message: Message) -> None:
        if message["type"] == "connection_ack":
            if not self.realtime.admit():
                await self.websocket.close(TOO_MANY_CONNECTIONS, TOO_MANY_CONNECTIONS_REASON)
                return
            interval = self.view.keep_alive_interval
            if self.view.keep_alive and interval:
                self.realtime.spawn(keep_pinging(self.realtime, interval))
        elif self.realtime.refused:
            return
        await super().send_message(message)

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        realtime = self.realtime
        if realtime.refused or realtime.closing:
            return  # the socket is being closed: nothing more is started on it
        plan = realtime.shared.plan(operation.query, operation.variables, operation.operation_name)
        if plan is None:
            await super().run_operation(operation)
            return
        try:
            failure = await realtime.shared.run(plan, operation.id)
        except asyncio.CancelledError:
            # The client completed it (or the socket went away): drop what is queued.
            realtime.discard_queued(operation.id)
            raise
        if operation.completed:
            return
        operation.completed = True
        if self.operations.get(operation.id) is operation:
            self.forget_id(operation.id)
        realtime.shared.send_terminal(operation.id, failure)

    def end_operations(self) -> list[asyncio.Task[Any]]:
        """For shutdown: end every operation; shared ones send ``complete`` themselves."""
        tasks: list[asyncio.Task[Any]] = []
        for op_id, operation in list(self.operations.items()):
            if operation.task is not None:
                tasks.append(operation.task)
            if op_id in self.realtime.shared:
                self.realtime.shared.end(op_id)
                continue
            operation.completed = True
            self.forget_id(op_id)
            if operation.task is not None:
                operation.task.cancel()
            self.realtime.outbox.offer_control(op_id, complete_text(op_id))
        return tasks
