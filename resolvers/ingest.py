"""The ``ingestTicks`` mutation for data feeds."""

from __future__ import annotations

from dataclasses import dataclass

from graphql import GraphQLError

from graphql_api.market.ingest import batch_key
from graphql_api.market.tick_validation import TickDraft
from graphql_api.platform.errors import ErrorCode, UserError
from resolvers.context import Info
from resolvers.errors import bad_user_input
from storage.timeseries import TimeSeriesWriteError
from storage.timeseries.base import BatchOutcome

MAX_TICKS_PER_CALL = 10_000
MAX_BATCH_ID_LENGTH = 64


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    accepted: int
    errors: list[UserError]


async def ingest_ticks(
    info: Info, drafts: list[TickDraft], batch_id: str | None = None
) -> IngestOutcome:
    if len(drafts) > MAX_TICKS_PER_CALL:
        raise bad_user_input(f"at most {MAX_TICKS_PER_CALL} ticks per call", argument="ticks")
    if batch_id is not None and not 1 <= len(batch_id) <= MAX_BATCH_ID_LENGTH:
        message = f"batchId must be 1 to {MAX_BATCH_ID_LENGTH} characters"
        return IngestOutcome(0, [UserError("batchId", ErrorCode.OUT_OF_RANGE, message)])
    ingestor = info.context.services.ingestor
    ticks, errors = await ingestor.validate(drafts)
    if errors:
        return IngestOutcome(0, errors)
    key = batch_key(info.context.user_id, batch_id, ticks) if batch_id is not None else None
    try:
        outcome = await ingestor.ingest(ticks, key)
    except TimeSeriesWriteError as error:
        if error.outcome_unknown:
            message = (
                "the tick store failed while committing; the ticks may or may not be stored "
                "(retry with the same batchId to find out without storing them twice)"
            )
        else:
            message = "the tick store is unavailable; nothing was written"
        raise GraphQLError(message, extensions={"code": "SERVICE_UNAVAILABLE"}) from error
    if outcome is BatchOutcome.CONFLICT:
        message = "batchId was already used for different ticks"
        return IngestOutcome(0, [UserError("batchId", ErrorCode.CONFLICT, message)])
    return IngestOutcome(len(ticks), [])
