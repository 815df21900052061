"""docker-compose.yml and the Dockerfile: valid Compose, and everything they name exists here.

Validation runs at three levels: the compose-spec JSON schema (vendored by the
check-jsonschema package, so offline), structural checks of what Portico needs from the
stack, and — when a Compose implementation is installed (`docker compose` plugin or Debian's
`docker-compose`) — `config -q` itself. Without one that last test is skipped; the others
still check the file.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from portico.cli import build_parser
from portico.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PORTICO_IMAGE = "portico:local"
PORTICO_SERVICES = {"migrate", "web", "worker"}

# Variables the third-party images read (from their documentation).
IMAGE_VARS = {
    "postgres": {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"},
    "temporalio/auto-setup": {
        "DB",
        "DB_PORT",
        "POSTGRES_SEEDS",
        "POSTGRES_USER",
        "POSTGRES_PWD",
        "DBNAME",
        "VISIBILITY_DBNAME",
        "SKIP_DB_CREATE",
        "SKIP_ADD_CUSTOM_SEARCH_ATTRIBUTES",
        "DEFAULT_NAMESPACE",
        "TEMPORAL_ADDRESS",
    },
    "temporalio/ui": {"TEMPORAL_ADDRESS", "TEMPORAL_CODEC_ENDPOINT", "TEMPORAL_CORS_ORIGINS"},
    "axllent/mailpit": set(),
}
# Variables only the compose file itself reads (from the shell or a .env beside it).
COMPOSE_VARS = {"POSTGRES_PASSWORD"}
INTERPOLATION = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
)


def settings_aliases() -> set[str]:
    return {field.alias for field in Settings.model_fields.values() if field.alias}


def load() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's `${NAME}`, `${NAME:-default}`, `${NAME:?error}` with an empty environment."""
    env = env or {}

    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if env.get(name):
            return env[name]
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            raise AssertionError(f"{name} is required: {arg}")
        return ""

    return INTERPOLATION.sub(one, value)


def image_name(service: dict[str, Any]) -> str:
    return service["image"].rsplit(":", 1)[0]


def as_list(command: str | list[str]) -> list[str]:
    return command.split() if isinstance(command, str) else list(command)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load()


# --- the compose-spec schema -------------------------------------------------------------


def compose_schema() -> dict[str, Any]:
    vendored = importlib.resources.files("check_jsonschema") / "builtin_schemas" / "vendor"
    return json.loads((vendored / "compose-spec.json").read_text())


def schema_errors(document: dict[str, Any]) -> list[str]:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_matches_the_compose_spec_schema(compose):
    assert schema_errors(compose) == []


def test_the_schema_check_catches_mistakes(compose):
    broken = copy.deepcopy(compose)
    broken["services"]["web"]["helthcheck"] = broken["services"]["web"].pop("healthcheck")
    broken["services"]["worker"]["depends_on"]["temporal"]["condition"] = "service_ready"
    errors = schema_errors(broken)
    assert any("helthcheck" in e for e in errors)
    assert any("service_ready" in e for e in errors)


# --- a Compose implementation, when there is one -------------------------------------------


def compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, timeout=30
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")  # Debian's package (Compose v1, works offline)
    return [legacy] if legacy else None


def test_docker_compose_config_accepts_the_file(tmp_path):
    command = compose_command()
    if command is None:
        pytest.skip("no `docker compose` plugin or docker-compose here; schema checks still ran")
    result = subprocess.run(
        [*command, "--project-directory", str(ROOT), "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr


# --- what Portico needs from the stack -------------------------------------------------------


def test_services_and_their_order(compose):
    services = compose["services"]
    assert set(services) >= {
        "postgresql", "temporal", "temporal-ui", "mailpit", "migrate", "web", "worker"
    }  # fmt: skip
    deps = {name: s.get("depends_on", {}) for name, s in services.items()}
    assert deps["migrate"]["postgresql"]["condition"] == "service_healthy"
    assert deps["temporal"]["postgresql"]["condition"] == "service_healthy"
    assert deps["web"]["migrate"]["condition"] == "service_completed_successfully"
    assert deps["worker"]["migrate"]["condition"] == "service_completed_successfully"
    assert deps["worker"]["temporal"]["condition"] == "service_healthy"
    assert services["migrate"]["restart"] == "no"  # one-shot
    for name, service in services.items():
        tag = service["image"].rsplit(":", 1)[-1] if ":" in service["image"] else "latest"
        assert tag not in ("latest", ""), f"{name}: pin the image version"


def test_healthchecks(compose):
    services = compose["services"]
    assert "pg_isready" in " ".join(as_list(services["postgresql"]["healthcheck"]["test"]))
    assert "temporal operator" in " ".join(as_list(services["temporal"]["healthcheck"]["test"]))
    web_check = " ".join(as_list(services["web"]["healthcheck"]["test"]))
    port = services["web"]["environment"]["PORTICO_HTTP_PORT"]
    assert f"http://127.0.0.1:{port}/healthz" in web_check
    from web.app import create_app

    app = create_app(Settings(PORTICO_VAR_DIR="/nonexistent", PORTICO_SECRET_KEY="x"))
    paths = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    assert {"/healthz", "/metrics", "/codec/decode", "/codec/encode"} <= paths


def test_commands_exist_in_the_project(compose):
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    scripts = pyproject["project"]["scripts"]
    modules = pyproject["tool"]["setuptools"]["py-modules"]
    seen = set()
    for name in PORTICO_SERVICES:
        command = as_list(compose["services"][name]["command"])
        seen.add(tuple(command))
        if command[0] == "python":
            script = command[1]
            assert (ROOT / script).is_file(), script
            assert script.removesuffix(".py") in modules  # installed with the package too
            assert re.search(rf"^COPY .*\b{re.escape(script)}\b", DOCKERFILE.read_text(), re.M)
        else:
            assert command[0] in scripts, command
            assert scripts[command[0]] == "portico.cli:main"
            assert build_parser().parse_args(command[1:]).command == command[1]
    assert seen == {("portico", "migrate"), ("portico", "web"), ("python", "worker.py")}


def test_paths_exist_in_the_repo(compose):
    for name, service in compose["services"].items():
        if "build" in service:
            build = service["build"]
            context = build if isinstance(build, str) else build["context"]
            assert (ROOT / context / "Dockerfile").is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: {source}"
            else:
                assert source in compose["volumes"], f"{name}: undeclared volume {source}"


def test_environment_names_are_known(compose):
    aliases = settings_aliases()
    for name, service in compose["services"].items():
        names = set(service.get("environment", {}))
        if service["image"] == PORTICO_IMAGE:
            assert names - aliases == set(), f"{name}: not Settings aliases"
        else:
            known = IMAGE_VARS[image_name(service)]
            assert names - known == set(), f"{name}: unknown to {service['image']}"
    used = {m["name"] for m in INTERPOLATION.finditer(COMPOSE.read_text())}
    assert used - aliases - COMPOSE_VARS == set()


def test_portico_services_get_valid_settings(compose, monkeypatch, tmp_path):
    """Each Portico service's environment, with nothing set on the host, loads as Settings."""
    monkeypatch.chdir(tmp_path)  # no developer .env
    for name in PORTICO_SERVICES:
        service = compose["services"][name]
        assert service["image"] == PORTICO_IMAGE and service["volumes"] == ["portico-data:/data"]
        for alias in settings_aliases():
            monkeypatch.delenv(alias, raising=False)
        for key, value in service["environment"].items():
            monkeypatch.setenv(key, interpolate(str(value)))
        settings = Settings()
        assert settings.database_url.startswith("postgresql+asyncpg://portico:")
        assert settings.database_url.endswith("@postgresql:5432/portico")
        assert settings.temporal_address == "temporal:7233"
        assert (settings.smtp_host, settings.smtp_port) == ("mailpit", 1025)
        assert settings.payload_key is None and settings.twilio_account_sid is None
        assert str(settings.files_dir) == "/data/files" and str(settings.var_dir) == "/data/var"
    web = compose["services"]["web"]["environment"]
    assert web["PORTICO_HTTP_HOST"] == "0.0.0.0"
    assert interpolate(str(web["PORTICO_WEB_PROCESSES"])) == "2"  # the host's two cores
    assert "8080:8080" in compose["services"]["web"]["ports"]
    worker = compose["services"]["worker"]["environment"]
    assert interpolate(str(worker["PORTICO_WORKER_SANDBOX"])) == "shared"


def test_temporal_ui_uses_the_codec_endpoint(compose):
    services = compose["services"]
    ui = services["temporal-ui"]
    assert interpolate(ui["environment"]["TEMPORAL_CODEC_ENDPOINT"]) == (
        "http://localhost:8080/codec"
    )
    (published,) = ui["ports"]
    ui_origin = f"http://localhost:{published.split(':')[0]}"
    assert interpolate(services["web"]["environment"]["PORTICO_CODEC_CORS_ORIGIN"]) == ui_origin
    postgres = services["postgresql"]
    assert services["temporal"]["environment"]["POSTGRES_SEEDS"] == "postgresql"
    assert postgres["environment"]["POSTGRES_DB"] == "portico"
    init = (ROOT / "deploy/postgres/init-databases.sql").read_text()
    for database in (
        services["temporal"]["environment"]["DBNAME"],
        services["temporal"]["environment"]["VISIBILITY_DBNAME"],
    ):
        assert f"CREATE DATABASE {database};" in init


def test_worker_metrics_port_is_exposed(compose):
    worker = compose["services"]["worker"]
    address = worker["environment"]["PORTICO_WORKER_METRICS_ADDRESS"]
    assert address.split(":")[1] in worker["expose"]


def test_dockerfile(compose):
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    # the image compiles the message catalogues (the .mo files are not committed), then installs
    assert re.search(
        r"^RUN .*pybabel compile -D messages -d portico/locale && pip install \.$", text, re.M
    )
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and user[-1] not in ("root", "0")
    assert re.search(r'^CMD \["portico", "web"\]$', text, re.M)
    copied = set()
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        *sources, _ = line.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            copied.add(source)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    for pattern in packages:  # every package the wheel includes is in the build context
        assert pattern.rstrip("*") in copied, pattern
    assert {"pyproject.toml", pyproject["project"]["readme"]} <= copied
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".env", "var", ".git"} <= set(ignored)
    assert not any(p.rstrip("*") in ignored for p in packages)


def test_interpolation_helper():
    assert interpolate("${A:-x}/${B}") == "x/"
    assert interpolate("${A:-x}", {"A": "y"}) == "y"
    with pytest.raises(AssertionError):
        interpolate("${A:?set A}")
