"""Where our server's time goes: ``py-spy record --native`` on the server PID
during a workload, summarised from its collapsed stacks into self and
inclusive shares (with the cyclic garbage collector's share on its own).

Profiled runs are extra runs: the figures of the measured runs never carry
py-spy's sampling overhead (which, with native stacks, is large: the server
runs several times slower while sampled, so only the shares mean anything).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.processes import LOAD_CPU, pinned, run_checked

RATE = 100
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<path>[^()]*?)(?::\d+)?\)$")
_PREFIXES = ("/site-packages/", "/lib/python3")
GC_FRAME = "[cyclic GC]"
# Frames every sample of the server passes through: no information.
_STARTUP = (
    "<frozen runpy>", "graphql_api/server/cli.py", "uvicorn/main.py", "uvicorn/server.py",
    "uvicorn/_compat.py", "asyncio/runners.py", "asyncio/base_events.py",
)  # fmt: skip


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return found if Path(found).exists() else None


def short_frame(frame: str) -> str:
    """``function (path:line)`` -> ``function (module/path.py)`` without install prefixes."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match["path"]
    for prefix in _PREFIXES:
        if prefix in path:
            path = path.split(prefix, 1)[1]
            if prefix == "/lib/python3":
                path = "stdlib/" + path.split("/", 1)[-1]
    path = path.replace(str(Path.cwd()) + "/", "")
    return f"{match['function']} ({path})"


def is_python(frame: str) -> bool:
    path = frame.rsplit("(", 1)[-1].rstrip(")")
    return path.endswith(".py") or path.startswith("<")


def summarise(collapsed: str, duration: float, top: int = 25) -> dict[str, Any]:
    """Self and inclusive shares of the sampled stacks.

    With native stacks, samples inside the cyclic garbage collector are counted
    as ``[cyclic GC]`` rather than charged to the Python line that happened to
    allocate; other C frames are folded into their nearest Python caller.
    """
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        raw = stack.split(";")
        in_gc = any(frame.startswith("gc_collect") for frame in raw)
        frames = [short_frame(frame) for frame in raw]
        python = [frame for frame in frames if is_python(frame)]
        if not python and not in_gc:
            continue
        total += count
        leaf = GC_FRAME if in_gc else python[-1]
        self_counts[leaf] += count
        for frame in {*python, *([GC_FRAME] if in_gc else [])}:
            if not any(marker in frame for marker in _STARTUP):
                inclusive[frame] += count
        path = leaf.rsplit("(", 1)[-1].rstrip(")")
        packages[GC_FRAME if in_gc else path.split("/", 1)[0]] += count

    def share(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"frame": frame, "percent": round(100.0 * count / total, 1)}
            for frame, count in counter.most_common(top)
        ]

    return {
        "samples": total,
        # py-spy leaves out idle samples (the loop waiting in epoll): the busy share.
        "busy_percent": round(100.0 * total / (RATE * duration), 1) if duration else None,
        "gc_percent": round(100.0 * self_counts[GC_FRAME] / total, 1) if total else None,
        "self_top": share(self_counts) if total else [],
        "inclusive_top": share(inclusive) if total else [],
        "self_by_package": share(packages) if total else [],
    }


async def record(pid: int, duration: float, output: Path) -> dict[str, Any]:
    """Sample ``pid`` for ``duration`` seconds; return the summary (raw stacks in ``output``)."""
    binary = py_spy()
    if binary is None:
        return {"error": "py-spy is not installed (pip install py-spy)"}
    seconds = max(1, round(duration))
    argv = [
        binary, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", str(RATE),
        "--native", "--format", "raw", "--output", str(output),
    ]  # fmt: skip
    await run_checked(pinned(argv, LOAD_CPU), timeout=seconds + 60)
    summary = summarise(await asyncio.to_thread(output.read_text), seconds)
    summary["collapsed_stacks"] = str(output)
    return summary
