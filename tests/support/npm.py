"""Node.js dependencies for tests that drive a Node program (clients, the browser)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

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
