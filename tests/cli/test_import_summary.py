"""The summary both import commands print, on its own."""

from __future__ import annotations

from graphql_api.market.imports.summary import ImportSummary


def test_groups_rejections_by_reason_biggest_first_with_a_few_lines_each() -> None:
    summary = ImportSummary(read=20, written=10)
    summary.reject(2, "date is not YYYY-MM-DD", "date 'x' is not a YYYY-MM-DD date")
    for line in range(3, 11):
        summary.reject(line, "high is below open or close", f"high 9.{line:02} is below")
    summary.reject(11, "bid is above ask")
    assert summary.render().splitlines() == [
        "rows read 20, written 10, rejected 10",
        "  rejected 8: high is below open or close (lines 3, 4, 5, 6, 7 and 3 more)",
        "    e.g. line 3: high 9.03 is below",
        "  rejected 1: date is not YYYY-MM-DD (line 2)",
        "    e.g. line 2: date 'x' is not a YYYY-MM-DD date",
        "  rejected 1: bid is above ask (line 11)",
    ]


def test_says_when_nothing_was_written_or_the_import_stopped() -> None:
    summary = ImportSummary(read=3, rolled_back=True, stopped="line 4: bad byte")
    summary.reject(2, "volume is negative")
    assert summary.render().splitlines()[-2:] == [
        "nothing written: all-or-nothing import with rejected rows",
        "stopped early: line 4: bad byte",
    ]
