"""A PostgreSQL that fault tests can stop and start again on the same port and data.

:func:`tests.support.servers.postgres_server` owns its cluster for the whole
session; outage tests need one of their own, so stopping it cannot disturb
other tests.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from tests.support.servers import (
    ServerUnavailableError,
    _as_user,
    _postgres_bin_dir,
    _unprivileged_user,
    _wait_until_accepting,
    free_port,
    wait_for_port,
)


class RestartablePostgres:
    """``initdb`` once; :meth:`start` / :meth:`stop` as often as needed.

    Use as a context manager: entering initialises and starts it, leaving stops it
    and removes its files.
    """

    def __init__(self) -> None:
        self.bin_dir = _postgres_bin_dir()
        self.user = _unprivileged_user()
        self.base = Path(tempfile.mkdtemp(prefix="quantgraph-pg-restartable-"))
        self.data = self.base / "data"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def __enter__(self) -> RestartablePostgres:
        try:
            self._initdb()
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _initdb(self) -> None:
        self.data.mkdir()
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            for path in (self.base, self.data):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.base.chmod(0o755)
        argv = [str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres"]
        argv += ["--auth=trust", "--no-sync", "-E", "UTF8"]
        done = subprocess.run(_as_user(self.user, argv), capture_output=True, check=False)
        if done.returncode != 0:
            raise ServerUnavailableError(f"initdb failed: {done.stderr.decode(errors='replace')}")

    def start(self) -> None:
        argv = [str(self.bin_dir / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        argv += ["-k", str(self.base), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]
        with (self.base / "postgres.log").open("ab") as log:
            self.process = subprocess.Popen(
                _as_user(self.user, argv), stdout=log, stderr=subprocess.STDOUT
            )
        try:
            wait_for_port(self.port, 30, self.process)
            _wait_until_accepting(self.bin_dir, self.port, 30)
        except ServerUnavailableError as error:
            log_text = (self.base / "postgres.log").read_text(errors="replace")[-2000:]
            raise ServerUnavailableError(f"PostgreSQL did not start: {error}\n{log_text}") from None

    def stop(self) -> None:
        """Fast shutdown: open connections are cut, as in a crash or failover."""
        process, self.process = self.process, None
        if process is None:
            return
        # pg_ctl, not a signal to our child: as root that child is `runuser`.
        argv = [str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w"]
        subprocess.run(_as_user(self.user, argv), capture_output=True, check=False, timeout=60)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
