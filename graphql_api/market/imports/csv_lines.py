"""The text lines every CSV importer reads (ticks, daily bars; file, stdin or ``importBars``).

Spreadsheets save CSV as UTF-8 with a byte-order mark; decoded as plain UTF-8
it becomes a ``\\ufeff`` glued to the first header name, and the header no
longer matches. Stripping it here, on text, covers callers that hand over
already-decoded text (``importBars``) as well as the CLI's own ``utf-8-sig``
decoding of files.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

BOM = "\ufeff"


def without_bom(lines: Iterable[str]) -> Iterator[str]:
    """``lines`` with a leading byte-order mark removed from the first one (utf-8-sig on text)."""
    iterator = iter(lines)
    for first in iterator:
        yield first.removeprefix(BOM)
        break
    yield from iterator
