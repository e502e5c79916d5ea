"""deploy/prometheus and deploy/grafana: the alert rules, their unit tests, the
Prometheus config and the dashboard are valid, wired into Compose, and read only
metrics the app exports.

Rules and config are checked by Prometheus' own promtool (``check rules``,
``check config``, ``test rules``); the metric names are compared with a real
app's ``/metrics`` in test_monitoring_metrics.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.promql import metric_names
from tests.deploy.test_compose_file import API_PORT, API_SERVICES, DEPLOY, depends_on, services
from tests.support.promtool import find_promtool, run_promtool
from tests.support.servers import ServerUnavailableError

PROMETHEUS = DEPLOY / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
ALERT_TESTS = PROMETHEUS / "alerts_test.yml"
PROMETHEUS_CONFIG = PROMETHEUS / "prometheus.yml"
GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboard.json"
SEVERITIES = {"page", "warning"}
# Series Prometheus makes itself for every scrape target, not exported by the app.
PROMETHEUS_SERIES = {"up"}

Json = dict[str, Any]


@cache
def load_yaml(path: Path) -> Json:
    loaded: Json = yaml.safe_load(path.read_text())
    return loaded


def alert_rules() -> dict[str, Json]:
    return {rule["alert"]: rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]}


@cache
def dashboard() -> Json:
    loaded: Json = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_panels() -> list[Json]:
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def dashboard_expressions() -> Iterator[str]:
    for panel in dashboard_panels():
        for target in panel["targets"]:
            yield target["expr"]


_LABEL_VALUES = re.compile(r"^label_values\((?:(?P<metric>[A-Za-z_:][\w:]*)\s*,\s*)?\w+\)$")


def dashboard_variable_metrics() -> set[str]:
    """Metrics the dashboard's query variables read (``label_values(metric, label)``)."""
    names: set[str] = set()
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        match = _LABEL_VALUES.match(text)
        assert match is not None, f"unexpected variable query {text!r}"
        if match.group("metric"):
            names.add(match.group("metric"))
    return names


def referenced_metrics() -> dict[str, set[str]]:
    """Metric name -> where it is used (alert names, dashboard panel titles)."""
    used: dict[str, set[str]] = {}
    for name, rule in alert_rules().items():
        for metric in metric_names(rule["expr"]):
            used.setdefault(metric, set()).add(f"alert {name}")
    for panel in dashboard_panels():
        for target in panel["targets"]:
            for metric in metric_names(target["expr"]):
                used.setdefault(metric, set()).add(f"panel {panel['title']!r}")
    for metric in dashboard_variable_metrics():
        used.setdefault(metric, set()).add("dashboard variable")
    return used


def bind_mounts(service: Json) -> dict[str, str]:
    """A service's files from deploy/ (``./src:/target[:mode]``): source -> target."""
    mounts: dict[str, str] = {}
    for volume in service.get("volumes") or []:
        source, target, *_mode = volume.split(":")
        if source.startswith("./"):
            mounts[source] = target
    return mounts


# ---- promtool


def test_alert_rules_pass_promtool_check(promtool: str) -> None:
    result = run_promtool(promtool, "check", "rules", ALERTS.name, cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_prometheus_config_passes_promtool_check(promtool: str) -> None:
    result = run_promtool(promtool, "check", "config", PROMETHEUS_CONFIG.name, cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout  # and checks alerts.yml with it


def test_alert_rules_unit_tests_pass(promtool: str) -> None:
    result = run_promtool(promtool, "test", "rules", ALERT_TESTS.name, cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_does_catch_broken_rules_and_wrong_expectations(
    promtool: str, tmp_path: Path
) -> None:
    # a rule whose expression does not parse
    broken = {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "rate(x[5m]"}]}]}
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(broken))
    result = run_promtool(promtool, "check", "rules", "broken.yml", cwd=tmp_path)
    assert result.returncode != 0
    # a unit test expecting an alert that does not fire then
    (tmp_path / "alerts.yml").write_text(ALERTS.read_text())
    tests = {
        "rule_files": ["alerts.yml"],
        "tests": [
            {
                "interval": "15s",
                "input_series": [
                    {"series": 'quantgraph_matcher_lag_seconds{instance="a"}', "values": "0x20"}
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "4m",
                        "alertname": "MatcherBehindTickStream",
                        "exp_alerts": [{"exp_labels": {"severity": "page"}}],
                    }
                ],
            }
        ],
    }
    (tmp_path / "wrong_test.yml").write_text(yaml.safe_dump(tests))
    result = run_promtool(promtool, "test", "rules", "wrong_test.yml", cwd=tmp_path)
    assert result.returncode != 0


# ---- the rules


def test_every_alert_has_a_severity_and_runbook_annotations() -> None:
    for name, rule in alert_rules().items():
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), name
        assert len(annotations["description"].split()) >= 15, f"{name}: say what to do"


def test_every_alert_is_explained_in_the_operations_guide() -> None:
    guide = (DEPLOY.parent / "docs" / "operations.md").read_text()
    alerts_section = guide.split("\n## Alerts\n", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(\w+)` \| (?:page|warning) \|", alerts_section, re.M))
    assert documented == set(alert_rules())
    for name, rule in alert_rules().items():
        row = re.search(rf"^\| `{name}` \| (\w+) \|", alerts_section, re.M)
        assert row is not None and row.group(1) == rule["labels"]["severity"], name


def test_every_alert_is_unit_tested_quiet_first_then_firing() -> None:
    """Each alert has a test where it is quiet at first (pending or not yet true) and
    fires later, so both its condition and its ``for:`` are pinned."""
    seen: dict[str, list[tuple[str, bool]]] = {}
    for case in load_yaml(ALERT_TESTS)["tests"]:
        for check in case["alert_rule_test"]:
            seen.setdefault(check["alertname"], []).append(
                (check["eval_time"], bool(check["exp_alerts"]))
            )
    for name in alert_rules():
        checks = seen.get(name, [])
        fired = [index for index, (_, firing) in enumerate(checks) if firing]
        assert fired, f"{name}: no unit test where it fires"
        assert any(not firing for _, firing in checks[: fired[0]]), (
            f"{name}: no check that it is quiet before it fires"
        )


def test_alerts_and_dashboard_read_quantgraph_metrics_only() -> None:
    for metric, places in referenced_metrics().items():
        assert metric.startswith("quantgraph_") or metric in PROMETHEUS_SERIES, (metric, places)


def test_metric_names_are_found_in_expressions() -> None:
    expression = (
        'histogram_quantile(0.99, sum by (le, route) (rate(a_seconds_bucket{route=~"/x", '
        'le!="1"}[$__rate_interval]))) / on (instance) group_left(job) b_total offset 5m '
        '> bool 0.5 and max without (service) (c{instance=~"$instance"}) or up == inf'
    )
    assert metric_names(expression) == {"a_seconds_bucket", "b_total", "c", "up"}


# ---- Prometheus in Compose


def test_prometheus_scrapes_every_api_server() -> None:
    jobs = {job["job_name"]: job for job in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]}
    quantgraph = jobs["quantgraph"]
    assert quantgraph.get("metrics_path", "/metrics") == "/metrics"
    targets = [target for group in quantgraph["static_configs"] for target in group["targets"]]
    assert sorted(targets) == [f"{name}:{API_PORT}" for name in API_SERVICES]
    # QuantgraphDown reads up{job="quantgraph"}: the job's name is part of the alert
    assert 'job="quantgraph"' in alert_rules()["QuantgraphDown"]["expr"]


def test_compose_runs_prometheus_with_the_config_and_rules_in_place() -> None:
    prometheus = services()["prometheus"]
    assert prometheus["image"].startswith("prom/prometheus:v2.")
    assert "monitoring" in prometheus["profiles"]
    mounts = dict(
        volume.rsplit(":", 1)[0].split(":", 1)
        for volume in prometheus["volumes"]
        if ":ro" in volume
    )
    config = mounts["./prometheus/prometheus.yml"]
    assert f"--config.file={config}" in prometheus["command"]
    # rule_files are relative to the config file, in the container as here
    for rule_file in load_yaml(PROMETHEUS_CONFIG)["rule_files"]:
        assert (PROMETHEUS / rule_file).is_file()
        assert mounts[f"./prometheus/{rule_file}"] == str(Path(config).parent / rule_file)
    assert "127.0.0.1:9090:9090" in prometheus["ports"]


def test_monitoring_is_opt_in_so_a_plain_compose_up_is_unchanged() -> None:
    for name, service in services().items():
        if name in {"prometheus", "grafana"}:
            assert service["profiles"] == ["monitoring"], name
        else:
            assert "profiles" not in service, name


# ---- Grafana in Compose


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard() -> None:
    grafana = services()["grafana"]
    assert grafana["image"].startswith("grafana/grafana:")
    assert depends_on(grafana) == {"prometheus": "service_healthy"}
    mounts = bind_mounts(grafana)
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    datasources = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    [source] = datasources["datasources"]
    assert (source["type"], source["url"]) == ("prometheus", "http://prometheus:9090")
    providers = load_yaml(GRAFANA / "provisioning" / "dashboards" / "quantgraph.yml")
    [provider] = providers["providers"]
    dashboard_in_container = Path(mounts["./grafana/dashboard.json"])
    assert dashboard_in_container.parent == Path(provider["options"]["path"])
    assert "127.0.0.1:3000:3000" in grafana["ports"]


# ---- the dashboard


def test_dashboard_panels_query_prometheus_and_fit_the_grid() -> None:
    board = dashboard()
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert board["uid"] and board["title"]
    occupied: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells
    for panel in dashboard_panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["refId"], panel["title"]


def test_dashboard_shows_what_the_alerts_watch() -> None:
    """Every metric an alert reads is on the dashboard, plus the service basics."""
    on_dashboard = {name for expr in dashboard_expressions() for name in metric_names(expr)}
    alerting = {name for rule in alert_rules().values() for name in metric_names(rule["expr"])}
    basics = {
        "quantgraph_http_requests_total",
        "quantgraph_http_request_duration_seconds_bucket",
        "quantgraph_websocket_connections",
        "quantgraph_db_query_duration_seconds_bucket",
        "quantgraph_circuit_open",
        "quantgraph_leader",
        "quantgraph_matcher_backlog",
        "quantgraph_market_data_ticks_total",
    }
    missing = (alerting - PROMETHEUS_SERIES | basics) - on_dashboard
    assert missing == set()


def test_a_missing_promtool_fails_with_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PROMTOOL", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServerUnavailableError, match="`prometheus` package"):
        find_promtool()
