"""Daily bar imports: the ``importBars`` payload and the mutation's resolver, which
``schema.mutation.Mutation`` declares as a field."""

from __future__ import annotations

import strawberry

from resolvers import bar_imports as resolvers
from resolvers.context import Info
from schema.common import UserError, user_errors


@strawberry.type(description="A CSV row that was not imported.")
class RejectedBarRow:
    line: int = strawberry.field(description="Line number in the CSV (the header is line 1).")
    reason: str = strawberry.field(description="Why it was rejected.")


@strawberry.type(description="Result of importBars: every row is written, or none.")
class ImportBarsPayload:
    rows_read: int = strawberry.field(description="Data rows in the CSV (blank lines skipped).")
    rows_written: int = strawberry.field(description="Daily bars inserted or replaced.")
    rejected: list[RejectedBarRow] = strawberry.field(description="Rows that failed validation.")
    user_errors: list[UserError] = strawberry.field(
        description="File-level problems and one per rejected row (field `csv.<line>`)."
    )


async def import_bars(info: Info, symbol: str, csv: str) -> ImportBarsPayload:
    report = await resolvers.import_bars(info, symbol, csv)
    return ImportBarsPayload(
        rows_read=report.rows_read,
        rows_written=report.rows_written,
        rejected=[RejectedBarRow(line=row.line, reason=row.reason) for row in report.rejected],
        user_errors=user_errors(report.errors),
    )
