"""The results chart (``realtime.png``), drawn with matplotlib from the results JSON."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

COLOURS = {"ours": "#1f77b4", "yoga": "#ff7f0e", "postgraphile": "#2ca02c"}


def draw(results: dict[str, Any], path: Path) -> bool:
    """Write the chart; False (and nothing written) when matplotlib is not installed."""
    # Imported by name: matplotlib is an optional benchmark dependency, so the
    # type checker must not require it.
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError:
        return False
    matplotlib.use("Agg")
    plt = importlib.import_module("matplotlib.pyplot")

    figure, axes = plt.subplots(2, 3, figsize=(17, 9.5))
    _fanout(axes[0][0], axes[0][1], results.get("fanout", []))
    _http(axes[0][2], axes[1][0], results.get("http", []))
    _ingest(axes[1][1], results.get("ingest"))
    _klines(axes[1][2], results.get("large_klines"))
    machine = results.get("machine", {})
    figure.suptitle(
        f"quantgraph realtime benchmarks: {results.get('command', '')}\n"
        f"{machine.get('cpu_model', '?')}, {machine.get('cpus', '?')} cores; "
        "server on core 0, load generators, PostgreSQL and Redis on core 1",
        fontsize=11,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def _fanout(throughput: Any, latency: Any, cells: list[dict[str, Any]]) -> None:
    throughput.set_title("(a) fan-out: deliveries/s (publish via Redis)")
    latency.set_title("(a) fan-out: p99 latency, ms (log)")
    series: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for cell in cells:
        key = (cell["server"], cell["publish_via"], cell["rate"])
        series.setdefault(key, []).append(cell)
    for (server, via, rate), points in sorted(series.items()):
        points.sort(key=lambda cell: cell["subscribers"])
        xs = [cell["subscribers"] for cell in points]
        style = "-" if rate >= 1000 else "--"
        marker = "o" if via == "redis" else "s"
        label = f"{server} {rate}/s" + ("" if via == "redis" else " via ingestTicks")
        colour = COLOURS.get(server, "grey")
        if via == "redis":
            throughput.plot(
                xs, [cell["deliveries_per_s"] for cell in points], style,
                marker=marker, color=colour, label=label,
            )  # fmt: skip
        latency.plot(
            xs, [cell["latency_ms"]["p99"] or 0 for cell in points], style,
            marker=marker, color=colour, label=label,
        )  # fmt: skip
    throughput.axhline(30_000, color="red", linewidth=0.8, linestyle=":", label="target 30k/s")
    latency.axhline(50, color="red", linewidth=0.8, linestyle=":", label="target 50 ms")
    latency.set_yscale("log")
    for axis in (throughput, latency):
        axis.set_xlabel("subscribers")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)


def _bars(axis: Any, labels: list[str], values: list[float], colours: list[str]) -> None:
    bars = axis.bar(range(len(values)), values, color=colours)
    axis.set_xticks(range(len(values)), labels, fontsize=8, rotation=15)
    for bar, value in zip(bars, values, strict=True):
        axis.annotate(
            f"{value:,.0f}" if value >= 10 else f"{value:.1f}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center", va="bottom", fontsize=8,
        )  # fmt: skip
    axis.grid(axis="y", alpha=0.3)


def _http(throughput: Any, latency: Any, runs: list[dict[str, Any]]) -> None:
    labels = [f"{run['workload']}\n{run['server']}" for run in runs]
    colours = [COLOURS.get(run["server"], "grey") for run in runs]
    throughput.set_title("(b) HTTP, 32 connections: requests/s")
    _bars(throughput, labels, [run["requests_per_s"] for run in runs], colours)
    latency.set_title("(b) HTTP, 32 connections: p99 latency, ms")
    _bars(latency, labels, [float(run["latency_ms"]["p99"]) for run in runs], colours)


def _ingest(axis: Any, ingest: dict[str, Any] | None) -> None:
    axis.set_title("(c) tick ingest into PostgreSQL: rows/s")
    if not ingest:
        return
    names = ["store", "ingestor", "raw_copy_batched", "raw_copy_single"]
    present = [name for name in names if name in ingest]
    colours = [COLOURS["ours"] if not name.startswith("raw") else "grey" for name in present]
    _bars(axis, present, [ingest[name]["rows_per_s"] for name in present], colours)


def _klines(axis: Any, large: dict[str, Any] | None) -> None:
    axis.set_title("(d) klines limit 10,000: p50 latency, ms")
    if not large:
        return
    labels: list[str] = []
    values: list[float] = []
    colours: list[str] = []
    for run in large.get("http", []):
        labels.append(f"{run['server']} (HTTP)")
        values.append(run["latency_ms"]["p50"])
        colours.append(COLOURS.get(run["server"], "grey"))
    below = large.get("below_graphql") or {}
    for key, label in (("store_ms", "our store"), ("sql_ms", "bare SQL")):
        if key in below:
            labels.append(label)
            values.append(below[key]["p50"])
            colours.append("grey")
    _bars(axis, labels, values, colours)
    axis.axhline(100, color="red", linewidth=0.8, linestyle=":", label="target 100 ms")
    axis.legend(fontsize=8)
