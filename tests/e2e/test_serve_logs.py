"""What ``quantgraph serve`` writes per request: the app's access log, one line each."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.processes import ServerProcess


def test_each_request_is_logged_once_by_the_app(tmp_path: Path) -> None:
    # given a server with the default log level and access log
    server = ServerProcess(
        {
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'logs.db'}",
            "MARKET_FEED": "none",
            "LOG_LEVEL": "info",
            "ACCESS_LOG": "true",
        }
    )
    try:
        server.start()
        # when three queries are sent
        for _ in range(3):
            response = httpx.post(f"{server.http}/graphql", json={"query": "{ __typename }"})
            assert response.status_code == 200
    finally:
        server.stop()
        log = server.log_path.read_text(errors="replace")
        server.log_path.unlink(missing_ok=True)
    # then each has the app's structured line, with its request id, and no second one
    lines = [line for line in log.splitlines() if "/graphql" in line]
    assert len(lines) == 3, log[-3000:]
    assert all("request_id=" in line and "operation_type=query" in line for line in lines)
