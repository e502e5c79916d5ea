"""The text lines every CSV importer reads (ticks, daily bars, symbols; file, stdin or
``importBars``), and the header check and line numbers the row-by-row ones share.

Spreadsheets save CSV as UTF-8 with a byte-order mark; decoded as plain UTF-8
it becomes a ``\\ufeff`` glued to the first header name, and the header no
longer matches. Stripping it here, on text, covers callers that hand over
already-decoded text (``importBars``) as well as the CLI's own ``utf-8-sig``
decoding of files.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

from graphql_api.platform.errors import ErrorCode, UserError

BOM = "\ufeff"


def without_bom(lines: Iterable[str]) -> Iterator[str]:
    """``lines`` with a leading byte-order mark removed from the first one (utf-8-sig on text)."""
    iterator = iter(lines)
    for first in iterator:
        yield first.removeprefix(BOM)
        break
    yield from iterator


class CsvRows:
    """A CSV reader over ``lines`` (byte-order mark removed) whose first line must be
    the header ``columns`` (names compared trimmed and case-insensitively)."""

    def __init__(self, lines: Iterable[str], columns: tuple[str, ...]) -> None:
        self._reader = csv.reader(without_bom(lines))
        self._columns = columns

    def check_header(self) -> UserError | None:
        try:
            header = next(self._reader, None)
        except (csv.Error, UnicodeDecodeError) as error:
            return UserError("csv", ErrorCode.INVALID, f"line 1: {error}")
        if header is None or tuple(cell.strip().lower() for cell in header) != self._columns:
            return UserError(
                "csv",
                ErrorCode.INVALID,
                f"the first line must be the header {','.join(self._columns)}",
            )
        return None

    def failed_line(self, error: Exception) -> int:
        """The line an exception from iterating came from."""
        # A decode error happens before the reader counts the line; a csv.Error after.
        return self._reader.line_num + (1 if isinstance(error, UnicodeDecodeError) else 0)
