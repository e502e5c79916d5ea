"""Child processes of the harness: CPU pinning, process groups, /proc metrics.

Every child starts in its own session (process group) so stopping it also stops
whatever it forked; a registry remembers live groups so an interrupted run still
kills them on the way out (``atexit`` as the last resort).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

SERVER_CPU = 0
LOAD_CPU = 1
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_live_groups: set[int] = set()


def pinning_available() -> bool:
    return shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


def pin_self_to_load_cpu() -> bool:
    """Put the harness (and, by inheritance, PostgreSQL, Redis and every child not
    pinned elsewhere) on the load-generator core, leaving core 0 to the server."""
    if not pinning_available():
        return False
    os.sched_setaffinity(0, {LOAD_CPU})
    return True


def pinned(argv: Sequence[str], cpu: int | str | None) -> list[str]:
    """``argv`` under ``taskset -c cpu`` (a core, or a list such as ``"0,1"``).

    None runs it as is, which inherits the harness's own pin (core 1): a child
    that may use every core must say so with the full list.
    """
    if cpu is None or not pinning_available():
        return list(argv)
    return ["taskset", "-c", str(cpu), *argv]


@dataclass
class Child:
    """A started child process (the leader of its own process group)."""

    name: str
    process: asyncio.subprocess.Process
    log_path: Path | None

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.returncode is None

    async def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the group, then SIGKILL it if it has not exited in ``timeout`` seconds."""
        if self.process.returncode is None:
            _signal_group(self.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                _signal_group(self.pid, signal.SIGKILL)
                await self.process.wait()
        # Stragglers of the group (workers a child forked) go too.
        _signal_group(self.pid, signal.SIGKILL)
        _live_groups.discard(self.pid)
        return self.process.returncode

    def log_tail(self, size: int = 3000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-size:]


async def spawn(
    name: str,
    argv: Sequence[str],
    *,
    cpu: int | str | None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    log_path: Path | None = None,
    pipe_stdio: bool = False,
) -> Child:
    """Start ``argv`` pinned to ``cpu`` in a new session.

    With ``pipe_stdio`` stdin and stdout are pipes (stderr goes to the log);
    otherwise stdout and stderr both go to ``log_path`` (or nowhere).
    """
    full_env = {**os.environ, **(env or {})}
    log = log_path.open("wb") if log_path is not None else None
    try:
        output = log if log is not None else asyncio.subprocess.DEVNULL
        process = await asyncio.create_subprocess_exec(
            *pinned(argv, cpu),
            env=full_env,
            cwd=cwd,
            stdin=asyncio.subprocess.PIPE if pipe_stdio else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if pipe_stdio else output,
            stderr=output,
            start_new_session=True,
            limit=16 * 1024 * 1024,
        )
    finally:
        if log is not None:
            log.close()
    _live_groups.add(process.pid)
    return Child(name, process, log_path)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@atexit.register
def _kill_leftovers() -> None:
    for pgid in list(_live_groups):
        _signal_group(pgid, signal.SIGKILL)
    _live_groups.clear()


async def run_checked(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 300.0,
    input_text: str | None = None,
) -> str:
    """Run a short command to completion; raise with its output if it fails."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL if input_text is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    _live_groups.add(process.pid)
    try:
        data = input_text.encode() if input_text is not None else None
        output, _ = await asyncio.wait_for(process.communicate(data), timeout)
    except TimeoutError:
        _signal_group(process.pid, signal.SIGKILL)
        await process.wait()
        raise RuntimeError(f"{' '.join(argv)} timed out after {timeout}s") from None
    finally:
        _live_groups.discard(process.pid)
    text = output.decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {process.returncode}:\n{text[-3000:]}")
    return text


# -- /proc metrics ---------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    stat = Path(f"/proc/{pid}/stat").read_text()
    # After the command: state is field 3, pgrp 5, utime and stime 14 and 15.
    return stat[stat.rindex(")") + 2 :].split()


def group_members(pid: int) -> list[int]:
    """``pid`` and every live process of its process group (a server's forked workers:
    ``spawn`` makes each child the leader of its own group)."""
    members = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != pid:
            try:
                if int(_stat_fields(int(entry.name))[2]) == pid:
                    members.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue  # exited while we looked
    return members


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its process group (all threads), in seconds.

    The leader's count includes its children that exited and were reaped (cutime,
    cstime), so a worker or helper process ending mid-measurement does not make
    the total go backwards.
    """
    fields = _stat_fields(pid)
    total = sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    for member in group_members(pid)[1:]:
        try:
            fields = _stat_fields(member)
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / _CLOCK_TICKS


def memory_mb(pid: int) -> dict[str, float]:
    """Resident set size now (VmRSS) and at its peak (VmHWM), in MiB, summed over the
    process group (a server with workers is all of them)."""
    values = {"VmRSS": 0.0, "VmHWM": 0.0}
    for member in group_members(pid):
        try:
            lines = Path(f"/proc/{member}/status").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            key, _, rest = line.partition(":")
            if key in values:
                values[key] += int(rest.split()[0]) / 1024
    return {"rss_mb": round(values["VmRSS"], 1), "peak_rss_mb": round(values["VmHWM"], 1)}


class CpuMeter:
    """CPU use of one process (and its group) over an interval, as a percentage of one core."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._cpu = 0.0
        self._wall = 0.0

    def start(self) -> None:
        self._cpu = cpu_seconds(self.pid)
        self._wall = time.monotonic()

    def percent(self) -> float:
        cpu = cpu_seconds(self.pid) - self._cpu
        wall = time.monotonic() - self._wall
        return round(100.0 * cpu / wall, 1) if wall > 0 else 0.0


def _core_times() -> dict[int, tuple[int, int]]:
    """Per core: (busy, total) jiffies since boot, from /proc/stat."""
    times: dict[int, tuple[int, int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name != "cpu":
            values = [int(value) for value in fields[:8]]
            idle = values[3] + values[4]  # idle + iowait
            times[int(name[3:])] = (sum(values) - idle, sum(values))
    return times


class CoreMeter:
    """Busy share of each core over an interval (all processes), in percent."""

    def __init__(self) -> None:
        self._start = _core_times()

    def start(self) -> None:
        self._start = _core_times()

    def percent(self) -> dict[int, float]:
        end = _core_times()
        shares: dict[int, float] = {}
        for core, (busy, total) in end.items():
            busy0, total0 = self._start.get(core, (0, 0))
            shares[core] = round(100.0 * (busy - busy0) / max(1, total - total0), 1)
        return shares


async def wait_for_quiet(
    threshold: float = 15.0, max_wait: float = 45.0, window: float = 1.0
) -> dict[str, float]:
    """Between measurements nothing of ours is busy: wait (bounded) until the
    machine's other users leave both cores under ``threshold`` percent busy.

    Returns how long it waited and the last busy share seen: other engineers'
    test runs on the same machine show up here and in the figures' noise.
    """
    started = time.monotonic()
    while True:
        meter = CoreMeter()
        await asyncio.sleep(window)
        busiest = max(meter.percent().values(), default=0.0)
        waited = time.monotonic() - started
        if busiest < threshold or waited >= max_wait:
            return {"waited_s": round(waited, 1), "background_busy_percent": busiest}
