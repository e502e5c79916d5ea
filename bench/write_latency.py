"""How long a tick takes to reach a subscriber's socket, measured inside our server.

The fan-out benchmark measures latency where the load generator reads a frame,
so it includes the load generator's own queueing: on this 2-core machine it
shares a core with PostgreSQL, Redis and the publisher, and a server that
delivers more frames can saturate it. This module, loaded into our server with
``--ours-prelude``, times the server's part alone: from a tick's ``time`` (the
publisher's stamp) to the moment a frame carrying it is written to a socket,
for one frame in ``SAMPLE_EVERY`` (framed by the WebSocket protocol, which the
transport write follows in the same call).

    python -m bench.run --only fanout --servers ours --cells redis:1000x100 \\
        --ours-prelude "import bench.write_latency as w; w.start('write_latency.json')"

Every two seconds it writes p50/p90/p99 (ms) and the sample count to the file
(the last write holds the whole run, warm-up included).
"""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import datetime
from pathlib import Path

from websockets.protocol import Protocol

SAMPLE_EVERY = 50
_TIME = re.compile(rb'"time":"([^"]+)"')


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    count = len(ordered)

    def at(share: float) -> float:
        return round(ordered[min(count - 1, int(count * share))] * 1000, 2)

    return {"samples": count, "p50_ms": at(0.5), "p90_ms": at(0.9), "p99_ms": at(0.99)}


def start(path: str) -> None:
    """Time sampled tick frames as they are framed for a socket; summarise them to ``path``."""
    samples: list[float] = []
    framed = 0
    send_text = Protocol.send_text

    def timed(protocol: Protocol, data: bytes | bytearray | memoryview, fin: bool = True) -> None:
        nonlocal framed
        framed += 1
        if framed % SAMPLE_EVERY == 0 and (found := _TIME.search(bytes(data))) is not None:
            stamp = datetime.fromisoformat(found.group(1).decode()).timestamp()
            samples.append(time.time() - stamp)
        send_text(protocol, data, fin)

    setattr(Protocol, "send_text", timed)  # noqa: B010 - replacing a method for the run

    def report() -> None:
        while True:
            time.sleep(2)
            if samples:
                Path(path).write_text(json.dumps(_summary(list(samples)), indent=1) + "\n")

    threading.Thread(target=report, name="write-latency", daemon=True).start()
