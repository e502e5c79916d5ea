"""promtool, Prometheus' own checker: it validates and unit-tests deploy/prometheus/.

It comes with Debian's ``prometheus`` package, which ``make test`` installs
(scripts/install-test-servers.sh). Like a test server that cannot start, a
missing promtool raises :class:`ServerUnavailableError`, which the fixture turns
into a test failure, never a skip: a rules file nobody checked must not pass.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.support.servers import ServerUnavailableError


def find_promtool() -> str:
    """``PROMTOOL`` if set, else ``promtool`` on PATH."""
    given = os.environ.get("PROMTOOL")
    if given:
        if not os.access(given, os.X_OK):
            raise ServerUnavailableError(f"PROMTOOL={given} is not an executable file")
        return given
    found = shutil.which("promtool")
    if found is None:
        raise ServerUnavailableError(
            "promtool not found on PATH: install Debian's `prometheus` package "
            "(make test does, through scripts/install-test-servers.sh) or set PROMTOOL "
            "to a promtool binary"
        )
    return found


def run_promtool(
    promtool: str, *args: str, cwd: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run promtool; the result carries its exit code and both outputs."""
    return subprocess.run(
        [promtool, *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
