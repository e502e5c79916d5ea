"""Client programs the tests run against a live server (Node clients, the browser driver)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest


def npm_ci(directory: Path, *, needed_for: str) -> None:
    """Install ``directory``'s locked npm dependencies, or fail saying what is missing.

    A missing Node.js is a failure, never a skip: the suite must show it ran.
    """
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        pytest.fail(
            f"{needed_for} needs `node` (20+) and `npm` on PATH: install Node.js 20 "
            "(e.g. Debian's `nodejs` and `npm` packages)"
        )
    command = [npm, "ci", "--no-audit", "--no-fund"]
    try:
        result = subprocess.run(
            command, cwd=directory, capture_output=True, text=True, timeout=300, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{' '.join(command)}` in {directory} took more than 300 s")
    if result.returncode != 0:
        pytest.fail(
            f"`{' '.join(command)}` in {directory} failed ({result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}"
        )


async def json_lines_of(
    command: Sequence[str],
    *,
    cwd: Path,
    timeout: float,
    env: dict[str, str] | None = None,
    failure_hint: str = "",
) -> list[dict[str, Any]]:
    """Run a client program to completion without blocking the server's event loop
    (it runs in this process); the JSON objects it printed, one per line."""
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.communicate()
        pytest.fail(f"{list(command[:2])} did not finish within {timeout} s")
    output, errors = stdout.decode(), stderr.decode()
    assert process.returncode == 0, (
        f"{list(command[:2])} failed (exit {process.returncode}){failure_hint}:\n{errors}\n{output}"
    )
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]
