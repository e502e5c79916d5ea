"""deploy/: the Compose file is valid Compose and its pieces are wired to each other.

The Compose Specification JSON schema is the official one (compose-spec/compose-spec
``schema/compose-spec.json``) as vendored and kept current by ``check-jsonschema``.
No Docker engine is needed: this checks the files, not running containers.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from graphql_api.platform.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
NGINX_CONF = DEPLOY / "nginx.conf"

API_SERVICES = ("api1", "api2")
API_PORT = 8000
API_ENVIRONMENT = {
    "DATABASE_URL": "postgresql+asyncpg://quantgraph:quantgraph@postgres:5432/quantgraph",
    "BROADCAST_URL": "redis://redis:6379/0",
    "TDENGINE_URL": "taosws://root:taosdata@tdengine:6041/market",
    "QUANTGRAPH_ENV": "production",
    "AUTO_MIGRATE": "false",
}
# Environment variables that are not quantgraph settings but are read by what it runs.
NON_SETTINGS_ENVIRONMENT = {"FORWARDED_ALLOW_IPS"}  # uvicorn's trusted proxies

Json = dict[str, Any]


@cache
def compose() -> Json:
    loaded: Json = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def services() -> dict[str, Json]:
    found: dict[str, Json] = compose()["services"]
    return found


@cache
def compose_schema() -> Json:
    vendor = resources.files("check_jsonschema") / "builtin_schemas" / "vendor"
    loaded: Json = json.loads((vendor / "compose-spec.json").read_text(encoding="utf-8"))
    return loaded


def schema_errors(document: Json) -> list[str]:
    schema = compose_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    return [
        f"{'/'.join(str(part) for part in error.absolute_path) or '<root>'}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def environment(service: Json) -> dict[str, str]:
    """A service's environment as a dict (Compose allows a mapping or KEY=VALUE items)."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        return dict(item.split("=", 1) for item in raw)
    return {key: "" if value is None else str(value) for key, value in raw.items()}


def depends_on(service: Json) -> dict[str, str]:
    """Dependency name -> condition (``service_started`` for the short list form)."""
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in raw.items()}


_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's variable interpolation: ``$$``, ``${X}``, ``${X:-d}``, ``${X-d}``, ``${X:?e}``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        current = env.get(name)
        unset = current is None or (op is not None and op.startswith(":") and current == "")
        if op in {":-", "-"} and unset:
            return arg
        if op in {":?", "?"} and unset:
            raise LookupError(f"{name}: {arg}")
        return current or ""

    return _INTERPOLATION.sub(replace, value)


# ---- the Compose Specification


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    errors = schema_errors(compose())
    assert errors == [], "\n".join(errors)


def test_the_schema_check_does_catch_mistakes() -> None:
    broken = {
        "services": {
            "api": {"image": "quantgraph", "healthcheck": {"interval": 10}, "imagee": "x"},
        },
        "volumes": {"bad name!": {}},
    }
    errors = schema_errors(broken)
    assert any("imagee" in error for error in errors), errors
    assert any("bad name!" in error for error in errors), errors


# ---- wiring between services, volumes, images


def test_every_service_has_an_image_or_a_build() -> None:
    for name, service in services().items():
        assert "image" in service or "build" in service, name


def test_builds_use_the_repository_root_and_the_deploy_dockerfile() -> None:
    for name, service in services().items():
        build = service.get("build")
        if build is None:
            continue
        context = (DEPLOY / build["context"]).resolve()
        assert context == ROOT, (name, context)
        assert (context / build["dockerfile"]).resolve() == DOCKERFILE, name


def test_every_dependency_exists_and_its_condition_can_be_met() -> None:
    for name, service in services().items():
        for target, condition in depends_on(service).items():
            assert target in services(), f"{name} depends on unknown service {target}"
            assert target != name
            if condition == "service_healthy":
                assert "healthcheck" in services()[target], f"{target} has no healthcheck"
            if condition == "service_completed_successfully":
                assert services()[target].get("restart", "no") == "no", (
                    f"one-shot {target} must not restart"
                )


def test_every_named_volume_used_is_declared() -> None:
    declared = set(compose().get("volumes") or {})
    used: set[str] = set()
    for service in services().values():
        for volume in service.get("volumes") or []:
            source = volume["source"] if isinstance(volume, dict) else volume.split(":", 1)[0]
            if source and not source.startswith((".", "/", "~")):
                used.add(source)
    assert used <= declared, f"undeclared named volumes: {used - declared}"
    assert declared <= used, f"declared but unused volumes: {declared - used}"


def test_bind_mounted_files_exist() -> None:
    for name, service in services().items():
        for volume in service.get("volumes") or []:
            source = volume["source"] if isinstance(volume, dict) else volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), (name, source)


def test_backing_services_are_the_expected_images_with_healthchecks() -> None:
    expected = {"postgres": "postgres:15", "redis": "redis:7", "tdengine": "tdengine/tdengine:3.3"}
    for name, image in expected.items():
        service = services()[name]
        assert service["image"].startswith(image), (name, service["image"])
        assert "healthcheck" in service, name
    assert "pg_isready" in str(services()["postgres"]["healthcheck"]["test"])
    assert "redis-cli" in str(services()["redis"]["healthcheck"]["test"])
    assert {"6030:6030", "6041:6041"} <= {str(port) for port in services()["tdengine"]["ports"]}


def test_migrate_runs_once_after_postgres_is_healthy() -> None:
    migrate = services()["migrate"]
    assert "quantgraph migrate" in " ".join(migrate["command"])
    assert depends_on(migrate) == {"postgres": "service_healthy"}
    assert migrate.get("restart") == "no"


# ---- the API servers


@pytest.mark.parametrize("name", API_SERVICES)
def test_api_service_is_configured_for_the_cluster(name: str) -> None:
    service = services()[name]
    env = environment(service)
    for key, value in API_ENVIRONMENT.items():
        assert env.get(key) == value, (name, key, env.get(key))
    assert "healthcheck" in service
    assert "/healthz" in " ".join(service["healthcheck"]["test"])
    assert f":{API_PORT}/" in " ".join(service["healthcheck"]["test"])
    assert depends_on(service) == {
        "postgres": "service_healthy",
        "redis": "service_healthy",
        "tdengine": "service_healthy",
        "migrate": "service_completed_successfully",
    }


def test_exactly_one_process_runs_the_simulated_feed() -> None:
    feeds = {name: environment(services()[name]).get("MARKET_FEED") for name in API_SERVICES}
    assert feeds == {"api1": "simulated", "api2": "none"}


@pytest.mark.parametrize("name", [*API_SERVICES, "migrate"])
def test_quantgraph_environment_is_valid_settings(name: str) -> None:
    """Every variable is a real setting, and the values (once interpolated) pass validation."""
    aliases = {field.alias for field in Settings.model_fields.values()}
    env = environment(services()[name])
    unknown = set(env) - aliases - NON_SETTINGS_ENVIRONMENT
    assert unknown == set(), f"{name}: not quantgraph settings: {unknown}"
    shell = {"JWT_SECRET": "a-long-random-secret-for-the-test"}
    values: dict[str, Any] = {
        key: interpolate(value, shell) for key, value in env.items() if key in aliases
    }
    settings = Settings(**values)
    assert settings.environment == "production"
    assert settings.auto_migrate is False


def test_production_secret_must_come_from_the_shell() -> None:
    env = environment(services()["api1"])
    with pytest.raises(LookupError, match="JWT_SECRET"):
        interpolate(env["JWT_SECRET"], {})


# ---- nginx in front


def nginx_upstream_servers(conf: str) -> dict[str, list[str]]:
    upstreams: dict[str, list[str]] = {}
    for match in re.finditer(r"upstream\s+(\S+)\s*\{(.*?)\}", conf, re.DOTALL):
        upstreams[match.group(1)] = re.findall(r"^\s*server\s+(\S+?)[\s;]", match.group(2), re.M)
    return upstreams


def nginx_location(conf: str, path: str) -> str:
    match = re.search(rf"location\s+{re.escape(path)}\s*\{{(.*?)\}}", conf, re.DOTALL)
    assert match is not None, f"no location {path}"
    return match.group(1)


def test_nginx_balances_over_both_api_servers() -> None:
    conf = NGINX_CONF.read_text()
    upstreams = nginx_upstream_servers(conf)
    assert len(upstreams) == 1, upstreams
    [(upstream, servers)] = upstreams.items()
    assert sorted(servers) == [f"{name}:{API_PORT}" for name in API_SERVICES]
    for path in ("/graphql", "/"):
        assert f"proxy_pass http://{upstream};" in nginx_location(conf, path)


def test_nginx_upgrades_websockets_on_graphql() -> None:
    conf = NGINX_CONF.read_text()
    graphql = nginx_location(conf, "/graphql")
    assert "proxy_http_version 1.1;" in graphql
    assert re.search(r"proxy_set_header\s+Upgrade\s+\$http_upgrade;", graphql)
    assert re.search(r"proxy_set_header\s+Connection\s+\$connection_upgrade;", graphql)
    assert re.search(r"map\s+\$http_upgrade\s+\$connection_upgrade", conf)
    timeout = re.search(r"proxy_read_timeout\s+(\d+)s;", graphql)
    assert timeout is not None and int(timeout.group(1)) >= 300


def test_nginx_service_mounts_the_config_and_waits_for_healthy_apis() -> None:
    nginx = services()["nginx"]
    assert nginx["image"].startswith("nginx:1.27")
    assert "8080:80" in [str(port) for port in nginx["ports"]]
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in nginx["volumes"]
    assert depends_on(nginx) == dict.fromkeys(API_SERVICES, "service_healthy")


# ---- the image


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, rest = stripped.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_is_multi_stage_slim_and_non_root() -> None:
    instructions = dockerfile_instructions()
    stages = [index for index, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    assert len(stages) >= 2
    final_stage = instructions[stages[-1] :]
    users = [rest for keyword, rest in final_stage if keyword == "USER"]
    assert users, "the runtime stage sets no USER"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert "python:3.11-slim" in DOCKERFILE.read_text()
    assert any(keyword == "COPY" and "--from=builder" in rest for keyword, rest in final_stage), (
        "the runtime stage copies the built venv from the builder"
    )


def test_dockerfile_runs_the_server_with_a_healthcheck() -> None:
    instructions = dict(dockerfile_instructions())
    assert "/healthz" in instructions["HEALTHCHECK"]
    assert instructions["EXPOSE"] == str(API_PORT)
    assert json.loads(instructions["CMD"]) == ["quantgraph", "serve", "--host", "0.0.0.0"]


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "data"} <= ignored


def test_compose_interpolation_helper() -> None:
    env = {"SET": "value", "EMPTY": ""}
    assert interpolate("$$HOME ${SET} $SET ${UNSET:-d} ${EMPTY:-d} ${EMPTY-d}", env) == (
        "$HOME value value d d "
    )
    with pytest.raises(LookupError):
        interpolate("${UNSET:?required}", env)
