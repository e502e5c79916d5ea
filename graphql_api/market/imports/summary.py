"""The end-of-import report shared by the offline CSV importers (ticks and daily bars).

A long import can reject thousands of rows for a handful of causes, so
rejections are grouped by a short, value-free *reason* (``"high is below open
or close"``) with a count, the first few line numbers and one full message as
an example. That keeps memory bounded however many rows fail, and tells the
operator what to fix in the source data rather than listing every line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LINES_PER_REASON = 5


@dataclass
class RejectionGroup:
    count: int
    lines: list[int]
    example: str | None


@dataclass
class ImportSummary:
    """Rows read, written and rejected; ``stopped`` says why the import ended early.

    ``stopped`` is set when the rest of the file became unusable (an
    undecodable line, broken CSV): the rows before it may already be written.
    """

    read: int = 0
    written: int = 0
    rejected: int = 0
    # Rows that were already stored exactly as given (a symbol import run again).
    unchanged: int = 0
    reasons: dict[str, RejectionGroup] = field(default_factory=dict)
    stopped: str | None = None
    rolled_back: bool = False

    def reject(self, line: int, reason: str, detail: str | None = None) -> None:
        self.rejected += 1
        group = self.reasons.get(reason)
        if group is None:
            example = f"line {line}: {detail}" if detail and detail != reason else None
            self.reasons[reason] = RejectionGroup(1, [line], example)
            return
        group.count += 1
        if len(group.lines) < LINES_PER_REASON:
            group.lines.append(line)

    def render(self) -> str:
        """The text the CLI prints: stable, so scripts may grep the first line."""
        out = [f"rows read {self.read}, written {self.written}, rejected {self.rejected}"]
        if self.unchanged:
            out.append(f"  unchanged {self.unchanged}: already stored as given")
        ordered = sorted(self.reasons.items(), key=lambda item: (-item[1].count, item[1].lines[0]))
        for reason, group in ordered:
            out.append(f"  rejected {group.count}: {reason} ({_lines(group)})")
            if group.example is not None:
                out.append(f"    e.g. {group.example}")
        if self.rolled_back:
            out.append("nothing written: all-or-nothing import with rejected rows")
        if self.stopped is not None:
            out.append(f"stopped early: {self.stopped}")
        return "\n".join(out) + "\n"


def _lines(group: RejectionGroup) -> str:
    listed = ", ".join(str(line) for line in group.lines)
    more = group.count - len(group.lines)
    prefix = "line" if group.count == 1 else "lines"
    return f"{prefix} {listed}" + (f" and {more} more" if more > 0 else "")
