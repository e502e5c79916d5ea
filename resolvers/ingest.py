"""The ``ingestTicks`` mutation for data feeds."""

from __future__ import annotations

from dataclasses import dataclass

from graphql import GraphQLError

from graphql_api.errors import UserError
from graphql_api.tick_validation import TickDraft
from resolvers.context import Info
from resolvers.errors import bad_user_input
from storage.timeseries import TimeSeriesWriteError

MAX_TICKS_PER_CALL = 10_000


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    accepted: int
    errors: list[UserError]


async def ingest_ticks(info: Info, drafts: list[TickDraft]) -> IngestOutcome:
    if len(drafts) > MAX_TICKS_PER_CALL:
        raise bad_user_input(f"at most {MAX_TICKS_PER_CALL} ticks per call", argument="ticks")
    ingestor = info.context.services.ingestor
    ticks, errors = await ingestor.validate(drafts)
    if errors:
        return IngestOutcome(0, errors)
    try:
        await ingestor.ingest(ticks)
    except TimeSeriesWriteError as error:
        raise GraphQLError(
            "the tick store is unavailable; nothing was written",
            extensions={"code": "SERVICE_UNAVAILABLE"},
        ) from error
    return IngestOutcome(len(ticks), [])
