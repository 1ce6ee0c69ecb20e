"""Deployment files: the Dockerfile, docker-compose.yml and deploy/kubernetes/ use commands and settings that exist.

No Docker engine or cluster here: the files are parsed, every command is resolved against the real
command-line programs (Celery's click commands, the kakao-dispatch typer app, Flower's options, the
heartbeat probe's parser, and `--help` of each in a subprocess), Redis' arguments are given to a real
redis-server, and the worker heartbeat is tested with real worker processes.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import redis
import yaml
from celery_processes import CeleryProcess, worker_process

from worker import heartbeat
from worker.celery import DISPATCH_QUEUE, celery_config
from worker.redis_server import RedisServer, find_redis_server, free_port
from worker.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
KUBERNETES = ROOT / "deploy" / "kubernetes"
SANDBOX_ENV = ROOT / "deploy" / "compose" / "sandbox.env"
BIN = Path(sys.executable).parent
IMAGE_ROOT = "/app"  # WORKDIR of the image, where examples/ is copied

#: Variables the deployment files may set that are not kakao-dispatch settings, and who reads them.
THIRD_PARTY_ENV = {"FLOWER_BASIC_AUTH": "Flower: user:password for basic auth"}
#: Read by `docker compose` itself (the sandbox env file switches the profile on).
COMPOSE_ENV = {"COMPOSE_PROFILES"}
#: The image's roles, by the command that starts them.
ROLES = ("worker", "beat", "gateway", "flower", "simulator")


def setting_names() -> set[str]:
    """Every environment variable worker/settings.py reads."""
    names = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        assert alias is not None and hasattr(alias, "choices"), field
        names.add(str(alias.choices[0]))
    return names


KNOWN_ENV = setting_names() | set(THIRD_PARTY_ENV)


def task_time_limit(environment: dict[str, Any] | None = None) -> float:
    """Celery's task_time_limit for a deployment's settings (a ConfigMap may raise it), else the default."""
    values = {key: value for key, value in (environment or {}).items() if key in KNOWN_ENV - set(THIRD_PARTY_ENV)}
    return float(celery_config(Settings(**values))["task_time_limit"])


# -- reading the files ----------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(document, dict)
    return document


def compose_services() -> dict[str, dict[str, Any]]:
    services = compose()["services"]
    assert isinstance(services, dict)
    return services


def kubernetes_documents() -> list[tuple[str, dict[str, Any]]]:
    """(file name, document) for every YAML document in deploy/kubernetes/ but the kustomization."""
    documents = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                documents.append((path.name, document))
    return documents


def kubernetes_objects(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in kubernetes_documents() if doc["kind"] == kind}


def kustomization() -> dict[str, Any]:
    document = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    assert isinstance(document, dict)
    return document


def env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        whole = pending + line
        pending = ""
        keyword, _, arguments = whole.strip().partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def dockerignored(relative: str, patterns: list[str]) -> bool:
    """Docker's rule, for the patterns used here: a pattern excludes a path or any directory above it."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[:end]) for end in range(1, len(parts) + 1)]
    excluded = False
    for raw in patterns:
        negated = raw.startswith("!")
        pattern = raw.lstrip("!").strip("/")
        if pattern.startswith("**/"):
            tail = pattern[3:]
            hit = any(fnmatch.fnmatch(part, tail) for part in parts) or any(
                fnmatch.fnmatch(prefix, pattern) for prefix in prefixes
            )
        else:
            hit = any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes)
        if hit:
            excluded = not negated
    return excluded


# -- commands: every one must exist, with options its program accepts ---------------------------


def role_of(argv: list[str]) -> str | None:
    if argv[:3] == ["celery", "-A", "worker"] and len(argv) > 3:
        return argv[3]
    if argv[:1] == ["kakao-dispatch"] and len(argv) > 1:
        return argv[1]
    return None


def celery_parent_context() -> click.Context:
    from celery.bin.base import CLIContext
    from celery.bin.celery import celery

    from worker.celery import app

    return click.Context(celery, info_name="celery", obj=CLIContext(app=app, no_color=True, workdir=None, quiet=True))


def parse_celery(subcommand: str, arguments: list[str]) -> None:
    parent = celery_parent_context()
    group = parent.command
    assert isinstance(group, click.Group)
    command = group.commands.get(subcommand)
    assert command is not None, f"celery has no sub-command {subcommand!r}"
    with command.make_context(subcommand, list(arguments), parent=parent) as context:
        if subcommand == "flower":  # Flower hands its options to tornado: check them against Flower's own
            parse_flower_options(list(context.params["tornado_argv"]))


def parse_flower_options(arguments: list[str]) -> None:
    from flower.options import options

    defaults = options.as_dict()
    for argument in arguments:
        assert argument.startswith("--") and "=" in argument, f"Flower option {argument!r}: use --name=value"
        name, _, value = argument[2:].partition("=")
        name = name.replace("-", "_")
        assert name in defaults, f"Flower has no option --{name}"
        if isinstance(defaults[name], int) and not isinstance(defaults[name], bool):
            assert value.isdigit(), f"Flower option --{name} takes a number, not {value!r}"


def parse_kakao_dispatch(subcommand: str, arguments: list[str]) -> None:
    import typer

    from producers.cli import app

    group: Any = typer.main.get_command(app)
    command = group.commands.get(subcommand)
    assert command is not None, f"kakao-dispatch has no command {subcommand!r}"
    parent = typer.Context(group, info_name="kakao-dispatch")
    with command.make_context(subcommand, list(arguments), parent=parent):
        pass


def usage_errors() -> tuple[type[Exception], ...]:
    """Click's usage errors, and typer's: recent typer versions carry their own copy of click."""
    import typer

    typer_click = [kind for kind in typer.BadParameter.__mro__ if kind.__name__ == "ClickException"]
    return (click.ClickException, *typer_click)


def check_command(argv: list[str], *, where: str) -> None:
    """Fail unless `argv` runs in the image: a program it has, options that program accepts."""
    assert argv and all(isinstance(part, str) for part in argv), f"{where}: command must be a list of strings"
    program, *arguments = argv
    try:
        if program == "celery":
            assert arguments[:2] == ["-A", "worker"], f"{where}: celery must load the app with -A worker"
            parse_celery(arguments[2], arguments[3:])
        elif program == "kakao-dispatch":
            parse_kakao_dispatch(arguments[0], arguments[1:])
        elif program == "python" and arguments[:2] == ["-m", "worker.heartbeat"]:
            heartbeat.argument_parser().parse_args(arguments[2:])
        elif program == "python" and arguments[:1] == ["-c"]:
            compile(arguments[1], where, "exec")
        elif program == "sleep":  # coreutils, in every Debian image
            float(arguments[0])
        else:
            pytest.fail(f"{where}: {shlex.join(argv)} uses a program the image does not have")
    except usage_errors() as error:
        pytest.fail(f"{where}: {shlex.join(argv)}: {getattr(error, 'format_message', error.__str__)()}")
    except SystemExit:
        pytest.fail(f"{where}: {shlex.join(argv)}: the heartbeat probe refuses these options")
    except (AssertionError, ValueError, SyntaxError, IndexError) as error:
        pytest.fail(f"{where}: {shlex.join(argv)}: {error}")


def compose_commands() -> Iterator[tuple[str, list[str]]]:
    for name, service in compose_services().items():
        if name == "redis":
            continue
        yield f"docker-compose.yml {name}", service["command"]
        test = service.get("healthcheck", {}).get("test")
        if test:
            assert test[0] == "CMD", f"{name}: healthcheck must be exec form"
            yield f"docker-compose.yml {name} healthcheck", test[1:]


def kubernetes_containers() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(where, pod spec, container) for our image's containers."""
    for file_name, document in kubernetes_documents():
        if document["kind"] not in ("Deployment", "StatefulSet"):
            continue
        spec = document["spec"]["template"]["spec"]
        for container in spec["containers"]:
            if container["image"].split(":")[0] == "kakao-dispatch":
                yield f"{file_name} {document['metadata']['name']}/{container['name']}", spec, container


def kubernetes_commands() -> Iterator[tuple[str, list[str]]]:
    for where, _, container in kubernetes_containers():
        yield where, container["command"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if "exec" in container.get(probe, {}):
                yield f"{where} {probe}", container[probe]["exec"]["command"]
        pre_stop = container.get("lifecycle", {}).get("preStop", {})
        if "exec" in pre_stop:
            yield f"{where} preStop", pre_stop["exec"]["command"]


def dockerfile_command() -> list[str]:
    commands = [arguments for keyword, arguments in dockerfile() if keyword == "CMD"]
    assert len(commands) == 1, "the Dockerfile needs exactly one CMD"
    argv = json.loads(commands[0])
    assert isinstance(argv, list), "CMD must be exec form (a JSON list)"
    return argv


def every_command() -> list[tuple[str, list[str]]]:
    return [*compose_commands(), *kubernetes_commands(), ("Dockerfile CMD", dockerfile_command())]


def harmless_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SINCH_", "KAKAO_", "FLOWER_"))}
    env["KAKAO_DISPATCH_REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: --help must not care
    return env


def test_every_command_exists_with_options_its_program_accepts() -> None:
    checked = every_command()
    for where, argv in checked:
        check_command(argv, where=where)
    roles = {role_of(argv) for _, argv in checked}
    assert set(ROLES) <= roles, f"roles without a command: {set(ROLES) - roles}"


def test_every_program_and_subcommand_answers_help_in_a_subprocess() -> None:
    """The installed console scripts themselves (what the image runs), not just their Python objects."""
    invocations = set()
    for _, argv in every_command():
        if argv[0] == "celery":
            invocations.add((str(BIN / "celery"), "-A", "worker", argv[3]))
        elif argv[0] == "kakao-dispatch":
            invocations.add((str(BIN / "kakao-dispatch"), argv[1]))
        elif argv[:3] == ["python", "-m", "worker.heartbeat"]:
            invocations.add((sys.executable, "-m", "worker.heartbeat"))
    assert len(invocations) == len(ROLES) + 1
    for invocation in sorted(invocations):
        done = subprocess.run(
            [*invocation, "--help"], cwd=ROOT, env=harmless_env(), capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, f"{shlex.join(invocation)} --help: {done.stderr[-1500:]}"
        assert "usage" in done.stdout.lower(), f"{shlex.join(invocation)} --help printed no usage"


def test_a_wrong_option_is_caught_by_the_command_check() -> None:
    """The check above can fail: an option the program does not have, a bad value, a missing program."""
    for argv in (
        ["celery", "-A", "worker", "worker", "--queue-count", "2"],
        ["celery", "-A", "worker", "worker", "-l", "LOUD"],
        ["celery", "-A", "worker", "flower", "--listen=0.0.0.0"],
        ["celery", "-A", "worker", "flower", "--port=http"],
        ["kakao-dispatch", "gateway", "--port", "eighty"],
        ["kakao-dispatch", "serve"],
        ["python", "-m", "worker.heartbeat", "--max-age", "soon"],
        ["curl", "-f", "http://127.0.0.1:8080/healthz"],
    ):
        with pytest.raises(pytest.fail.Exception):
            check_command(argv, where="test")


# -- HTTP paths used by health checks, probes and scrape annotations ------------------------------


def http_paths(role: str) -> list[str]:
    """Route patterns the role's server answers."""
    if role == "gateway":
        from producers.gateway import create_gateway

        return [str(getattr(route, "path", "")) for route in create_gateway(Settings()).routes]
    if role == "simulator":
        from simulator.config import SimulatorConfig
        from simulator.server import create_app

        return [str(getattr(route, "path", "")) for route in create_app(SimulatorConfig()).routes]
    if role == "flower":
        from flower.urls import handlers

        return [handler[0] if isinstance(handler, tuple) else handler.regex.pattern for handler in handlers]
    raise AssertionError(f"{role} serves no HTTP")


def answers(role: str, path: str) -> bool:
    if role == "flower":  # tornado patterns are regular expressions; `.*` is its 404 page
        return any(re.fullmatch(pattern.rstrip("$"), path) for pattern in http_paths(role) if pattern != ".*")
    return path in http_paths(role)


def python_healthcheck_url(argv: list[str]) -> tuple[int, str]:
    assert argv[:2] == ["python", "-c"], argv
    match = re.search(r"http://127\.0\.0\.1:(\d+)(/[^'\"]*)", argv[2])
    assert match, f"no local URL in {argv[2]!r}"
    return int(match.group(1)), match.group(2)


def option_value(argv: list[str], name: str) -> str:
    for index, part in enumerate(argv):
        if part == name:
            return argv[index + 1]
        if part.startswith(name + "="):
            return part.split("=", 1)[1]
    raise AssertionError(f"{name} missing from {argv}")


def test_compose_http_healthchecks_ask_the_right_port_for_a_path_the_role_serves() -> None:
    for name, service in compose_services().items():
        role = role_of(service.get("command", []))
        if role not in ("gateway", "flower", "simulator"):
            continue
        port, path = python_healthcheck_url(service["healthcheck"]["test"][1:])
        assert port == int(option_value(service["command"], "--port")), name
        assert answers(role, path), f"{name}: {role} does not serve {path}"
    assert python_healthcheck_url(compose_services()["gateway"]["healthcheck"]["test"][1:])[1] == "/healthz"


def test_kubernetes_http_probes_and_scrape_annotations_name_paths_the_role_serves() -> None:
    for where, _, container in kubernetes_containers():
        role = role_of(container["command"])
        ports = {port["name"]: port["containerPort"] for port in container.get("ports", [])}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            get = container.get(probe, {}).get("httpGet")
            if get:
                assert role is not None and answers(role, get["path"]), f"{where} {probe}: {get['path']}"
                assert get["port"] in ports or get["port"] in ports.values(), f"{where} {probe}: unknown port"
    for name, deployment in kubernetes_objects("Deployment").items():
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        if annotations.get("prometheus.io/scrape") != "true":
            continue
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        role = role_of(container["command"])
        assert role is not None and answers(role, annotations["prometheus.io/path"]), name
        assert int(annotations["prometheus.io/port"]) in [port["containerPort"] for port in container["ports"]]


# -- Dockerfile and .dockerignore ------------------------------------------------------------------


def test_dockerfile_builds_from_python_slim_installs_the_project_without_dev_extras_and_runs_as_non_root() -> None:
    instructions = dockerfile()
    bases = [arguments.split()[0] for keyword, arguments in instructions if keyword == "FROM"]
    assert bases and all(base in ("python:3.11-slim", "python:3.12-slim") for base in bases), bases
    assert len(set(bases)) == 1, "the virtualenv built in one stage runs on the other stage's interpreter"
    runs = " ".join(arguments for keyword, arguments in instructions if keyword == "RUN")
    assert re.search(r"pip install \.(\s|$)", runs), "the image must `pip install .`"
    assert "[dev]" not in runs and "pytest" not in runs
    users = [arguments for keyword, arguments in instructions if keyword == "USER"]
    assert users, "the image must not run as root"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0, "USER must be a numeric non-root uid (Kubernetes runAsNonRoot)"
    assert not [keyword for keyword, _ in instructions if keyword == "ENTRYPOINT"]
    # One image, five roles: a HEALTHCHECK in the image would be wrong for four of them.
    assert not [keyword for keyword, _ in instructions if keyword == "HEALTHCHECK"]
    check_command(dockerfile_command(), where="Dockerfile CMD")


def test_dockerfile_copies_what_the_build_needs_and_dockerignore_keeps_it() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [pattern.rstrip("*") for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]]
    assert set(packages) == {"worker", "producers", "simulator"}
    assert pyproject["project"]["readme"] == "README.md"
    patterns = dockerignore_patterns()
    sources = []
    for keyword, arguments in dockerfile():
        if keyword == "COPY" and not arguments.startswith("--from"):
            *copied, _ = arguments.split()
            sources.extend(copied)
    needed = {"pyproject.toml", "README.md", "examples", *packages}
    assert needed <= set(sources), f"not copied: {needed - set(sources)}"
    for source in sources:
        path = ROOT / source
        assert path.exists(), f"COPY {source}: no such file"
        assert not dockerignored(source, patterns), f"COPY {source} is excluded by .dockerignore"
        files = (
            [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        )
        for file in files:
            relative = file.relative_to(ROOT).as_posix()
            assert not dockerignored(relative, patterns), f"{relative} is excluded by .dockerignore"
    assert (ROOT / "examples" / "templates.json").is_file()
    for bulky in (".venv", ".git", "tests", "bench", "build"):
        assert dockerignored(bulky, patterns), f"{bulky} should not be sent to the Docker daemon"
    assert dockerignored("worker/__pycache__/jobs.cpython-311.pyc", patterns)


def test_image_links_examples_where_the_installed_packages_look_for_them() -> None:
    """producers.api finds examples/ beside the packages; installed, that is site-packages/examples."""
    import producers
    from producers.api import EXAMPLES_DIR

    assert EXAMPLES_DIR.parent == Path(producers.__file__).resolve().parent.parent / "examples"
    runs = [arguments for keyword, arguments in dockerfile() if keyword == "RUN"]
    assert any(f"ln -s {IMAGE_ROOT}/examples" in run and "purelib" in run for run in runs)
    workdirs = [arguments for keyword, arguments in dockerfile() if keyword == "WORKDIR"]
    assert workdirs[-1] == IMAGE_ROOT


def test_dockerignore_matcher_follows_dockers_rules() -> None:
    patterns = [".venv", "**/__pycache__", "*.egg-info", "tests", "!tests/keep.py"]
    assert dockerignored(".venv/bin/python", patterns)
    assert dockerignored("worker/lua/__pycache__/x.pyc", patterns)
    assert dockerignored("kakao_dispatch.egg-info/PKG-INFO", patterns)
    assert not dockerignored("worker/tests.py", patterns)
    assert not dockerignored("tests/keep.py", patterns)
    assert not dockerignored("worker/jobs.py", patterns)


# -- docker-compose.yml ----------------------------------------------------------------------------


def duration_seconds(text: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    assert parts and "".join(number + unit for number, unit in parts) == text, f"not a duration: {text}"
    return sum(float(number) * units[unit] for number, unit in parts)


def test_compose_runs_every_role_from_one_image_built_here() -> None:
    services = compose_services()
    assert set(services) == {"redis", *ROLES}
    images = {(service["image"], service["build"]) for name, service in services.items() if name != "redis"}
    assert images == {("kakao-dispatch:latest", ".")}
    roles = {name: role_of(service["command"]) for name, service in services.items() if name != "redis"}
    assert roles == {role: role for role in ROLES}
    assert services["worker"]["command"][4:6] == ["-Q", "dispatch,callbacks"]


def test_compose_redis_is_durable_and_never_evicts() -> None:
    redis_service = compose_services()["redis"]
    assert redis_service["image"] == "redis:7"
    arguments = redis_service["command"]
    assert arguments[0] == "redis-server"
    assert option_value(arguments, "--appendonly") == "yes"
    assert option_value(arguments, "--appendfsync") == "everysec"
    assert option_value(arguments, "--maxmemory-policy") == "noeviction"
    assert redis_service["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    volume = redis_service["volumes"][0].split(":")
    assert volume[1] == "/data" and volume[0] in compose()["volumes"]


def test_compose_workers_scale_and_shut_down_warm_and_beat_is_single() -> None:
    services = compose_services()
    worker = services["worker"]
    assert "container_name" not in worker and "ports" not in worker, "`--scale worker=N` needs both absent"
    assert "worker@%h" in worker["command"], "each scaled worker needs its own node name"
    fixed = {key: value for key, value in worker["environment"].items() if value is not None and "${" not in value}
    assert duration_seconds(worker["stop_grace_period"]) > task_time_limit(fixed)
    beat = services["beat"]
    assert beat["deploy"]["replicas"] == 1 and "scale" not in beat
    for name in ("redis", "worker", "gateway", "flower", "simulator"):
        assert services[name]["healthcheck"]["test"], f"{name} has no healthcheck"
    assert services["gateway"]["ports"] == ["8080:8080"]
    depends = {name: service.get("depends_on", {}) for name, service in services.items()}
    for name in ("worker", "beat", "gateway", "flower"):
        assert depends[name]["redis"]["condition"] == "service_healthy", name


def test_compose_worker_health_is_the_heartbeat_file() -> None:
    worker = compose_services()["worker"]
    assert worker["healthcheck"]["test"][1:4] == ["python", "-m", "worker.heartbeat"]
    assert worker["environment"]["KAKAO_DISPATCH_HEARTBEAT_FILE"].startswith("/tmp/")
    max_age = float(option_value(worker["healthcheck"]["test"], "--max-age"))
    interval = Settings.model_fields["heartbeat_interval"].default
    assert max_age >= 3 * interval, "a probe must tolerate a few missed touches"


def test_compose_passes_every_setting_and_only_known_variables() -> None:
    services = compose_services()
    names = setting_names()
    for name, service in services.items():
        if name in ("redis", "simulator"):
            continue
        environment = service["environment"]
        unknown = set(environment) - KNOWN_ENV
        assert not unknown, f"{name} sets variables no setting reads: {unknown}"
        missing = names - set(environment) - {"KAKAO_DISPATCH_HEARTBEAT_FILE"}
        assert not missing, f"{name} does not pass these settings through: {sorted(missing)}"
    text = (ROOT / "docker-compose.yml").read_text()
    interpolated = set(re.findall(r"\$\{(\w+)", text))
    assert interpolated - KNOWN_ENV == set(), f"unknown variables: {interpolated - KNOWN_ENV}"
    assert "${FLOWER_BASIC_AUTH:?" in services["flower"]["environment"]["FLOWER_BASIC_AUTH"], "Flower needs a login"


def test_compose_sandbox_profile_points_sinch_at_the_simulator() -> None:
    services = compose_services()
    simulator = services["simulator"]
    assert simulator["profiles"] == ["sandbox"]
    assert all("profiles" not in service for name, service in services.items() if name != "simulator")
    sandbox = env_file(SANDBOX_ENV)
    assert set(sandbox) - KNOWN_ENV - COMPOSE_ENV == set()
    assert sandbox["COMPOSE_PROFILES"] == "sandbox"
    api = urlsplit(sandbox["SINCH_API_URL"])
    assert (api.hostname, api.port) == ("simulator", int(option_value(simulator["command"], "--port")))
    assert sandbox["SINCH_AUTH_URL"] == sandbox["SINCH_API_URL"] + "/oauth2/token"
    assert answers("simulator", "/oauth2/token")
    command = simulator["command"]
    for option, variable in (("--project-id", "SINCH_PROJECT_ID"), ("--app-id", "SINCH_APP_ID"),
                             ("--key-id", "SINCH_KEY_ID"), ("--key-secret", "SINCH_KEY_SECRET"),
                             ("--webhook-secret", "SINCH_WEBHOOK_SECRET")):  # fmt: skip
        value = option_value(command, option)
        assert value.startswith("${" + variable + ":-"), f"{option} must follow {variable}"
        assert value == "${" + variable + ":-" + sandbox[variable] + "}", f"{option}: default differs from sandbox.env"
    webhook = urlsplit(option_value(command, "--webhook-url"))
    assert (webhook.hostname, webhook.port) == ("gateway", int(option_value(services["gateway"]["command"], "--port")))
    assert answers("gateway", webhook.path)
    assert "FLOWER_BASIC_AUTH" in sandbox
    header = (ROOT / "docker-compose.yml").read_text()
    assert "--env-file deploy/compose/sandbox.env --profile sandbox" in header


# -- Kubernetes ------------------------------------------------------------------------------------


def test_every_kubernetes_document_has_its_required_fields_and_is_in_the_kustomization() -> None:
    documents = kubernetes_documents()
    assert documents
    for file_name, document in documents:
        for field in ("apiVersion", "kind", "metadata"):
            assert field in document, f"{file_name}: {field} missing"
        assert document["metadata"].get("name"), f"{file_name}: metadata.name missing"
        if document["kind"] in ("Deployment", "StatefulSet"):
            selector = document["spec"]["selector"]["matchLabels"]
            labels = document["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= labels.items(), f"{file_name}: selector does not match the pod labels"
            for container in document["spec"]["template"]["spec"]["containers"]:
                assert container.get("image") and container.get("name"), file_name
                assert "resources" in container, f"{file_name}: {container['name']} has no resources"
    files = {path.name for path in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert set(kustomization()["resources"]) == files
    pod_labels = [
        doc["spec"]["template"]["metadata"]["labels"]
        for _, doc in documents
        if doc["kind"] in ("Deployment", "StatefulSet")
    ]
    for name, service in kubernetes_objects("Service").items():
        selector = service["spec"]["selector"]
        assert any(selector.items() <= labels.items() for labels in pod_labels), f"Service {name} selects no pod"


def test_kubernetes_environment_names_only_known_settings_and_existing_config() -> None:
    config_maps = kubernetes_objects("ConfigMap")
    secrets = kubernetes_objects("Secret")
    for name, config_map in config_maps.items():
        assert set(config_map["data"]) <= KNOWN_ENV, f"ConfigMap {name}: {set(config_map['data']) - KNOWN_ENV}"
    for name, secret in secrets.items():
        assert set(secret["stringData"]) <= KNOWN_ENV, f"Secret {name}: {set(secret['stringData']) - KNOWN_ENV}"
    for where, _, container in kubernetes_containers():
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] in config_maps, where
            else:
                assert source["secretRef"]["name"] in secrets, where
        for variable in container.get("env", []):
            assert variable["name"] in KNOWN_ENV, f"{where}: {variable['name']} is no setting"
            reference = variable.get("valueFrom", {}).get("secretKeyRef")
            if reference:
                assert reference["key"] in secrets[reference["name"]]["stringData"], where
    flower = kubernetes_objects("Deployment")["kakao-dispatch-flower"]["spec"]["template"]["spec"]["containers"][0]
    assert [source.get("secretRef") for source in flower["envFrom"]] == [None], "Flower needs no Sinch secrets"


def test_kubernetes_worker_shuts_down_warm_and_its_liveness_is_the_heartbeat_file() -> None:
    deployment = kubernetes_objects("Deployment")["kakao-dispatch-worker"]
    spec = deployment["spec"]["template"]["spec"]
    container = spec["containers"][0]
    (config,) = [source["configMapRef"]["name"] for source in container["envFrom"] if "configMapRef" in source]
    environment = {**kubernetes_objects("ConfigMap")[config]["data"]}
    environment.update({variable["name"]: variable["value"] for variable in container["env"] if "value" in variable})
    assert spec["terminationGracePeriodSeconds"] > task_time_limit(environment)
    assert "replicas" not in deployment["spec"], "KEDA owns the replica count"
    container = spec["containers"][0]
    assert container["command"][:6] == ["celery", "-A", "worker", "worker", "-Q", "dispatch,callbacks"]
    for probe in ("startupProbe", "livenessProbe"):
        command = container[probe]["exec"]["command"]
        assert command[:3] == ["python", "-m", "worker.heartbeat"], f"{probe} must read the heartbeat file"
        assert "inspect" not in command
    env = {variable["name"]: variable.get("value") for variable in container["env"]}
    heartbeat_file = Path(env["KAKAO_DISPATCH_HEARTBEAT_FILE"])
    mounts = [Path(mount["mountPath"]) for mount in container["volumeMounts"]]
    if container["securityContext"].get("readOnlyRootFilesystem"):
        assert any(mount in heartbeat_file.parents for mount in mounts), "the heartbeat file must be writable"
    liveness = container["livenessProbe"]
    max_age = float(option_value(liveness["exec"]["command"], "--max-age"))
    assert max_age >= 3 * Settings.model_fields["heartbeat_interval"].default
    assert liveness["timeoutSeconds"] >= 5, "the probe starts a Python interpreter"


def test_keda_scales_workers_on_the_dispatch_list_and_never_to_zero() -> None:
    (scaled,) = kubernetes_objects("ScaledObject").values()
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == "kakao-dispatch-worker"
    assert scaled["spec"]["minReplicaCount"] >= 1, "the callbacks queue always needs a worker"
    assert scaled["spec"]["maxReplicaCount"] > scaled["spec"]["minReplicaCount"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis"
    metadata = trigger["metadata"]
    assert metadata["listName"] == DISPATCH_QUEUE == "dispatch"
    assert int(metadata["listLength"]) > 0
    host, port = metadata["address"].rsplit(":", 1)
    redis_service = kubernetes_objects("Service")["redis"]
    assert host == f"redis.{kustomization()['namespace']}.svc.cluster.local"
    assert int(port) == redis_service["spec"]["ports"][0]["port"]
    assert all(isinstance(value, str) for value in metadata.values()), "KEDA metadata values are strings"


def test_kubernetes_beat_is_one_replica_replaced_by_recreate() -> None:
    beat = kubernetes_objects("Deployment")["kakao-dispatch-beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"
    assert role_of(beat["spec"]["template"]["spec"]["containers"][0]["command"]) == "beat"


def test_kubernetes_gateway_and_flower_have_services_and_probes() -> None:
    deployments = kubernetes_objects("Deployment")
    services = kubernetes_objects("Service")
    gateway = deployments["kakao-dispatch-gateway"]["spec"]["template"]
    container = gateway["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert gateway["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    for name in ("kakao-dispatch-gateway", "kakao-dispatch-flower"):
        pod = deployments[name]["spec"]["template"]
        port_names = {port["name"] for port in pod["spec"]["containers"][0]["ports"]}
        assert services[name]["spec"]["ports"][0]["targetPort"] in port_names
        assert services[name]["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
        assert pod["spec"]["containers"][0]["livenessProbe"], name
    flower_env = {variable["name"] for variable in deployments["kakao-dispatch-flower"]["spec"]["template"]["spec"]
                  ["containers"][0]["env"]}  # fmt: skip
    assert "FLOWER_BASIC_AUTH" in flower_env


def test_our_containers_run_as_the_image_user_without_privileges() -> None:
    for where, spec, container in kubernetes_containers():
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["runAsUser"] == 10001, where
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, where


def test_kubernetes_redis_is_durable_and_never_evicts() -> None:
    (redis_set,) = kubernetes_objects("StatefulSet").values()
    container = redis_set["spec"]["template"]["spec"]["containers"][0]
    arguments = container["args"]
    assert option_value(arguments, "--appendonly") == "yes"
    assert option_value(arguments, "--appendfsync") == "everysec"
    assert option_value(arguments, "--maxmemory-policy") == "noeviction"
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    claims = {claim["metadata"]["name"] for claim in redis_set["spec"]["volumeClaimTemplates"]}
    assert mounts.get("data") == "/data" and "data" in claims
    assert "managed Redis" in (KUBERNETES / "redis.yaml").read_text()


@pytest.mark.parametrize("source", ["docker-compose.yml", "deploy/kubernetes/redis.yaml"])
def test_a_real_redis_server_accepts_the_arguments_and_reports_the_durable_settings(
    source: str, tmp_path: Path
) -> None:
    if source == "docker-compose.yml":
        arguments = compose_services()["redis"]["command"]
    else:
        (redis_set,) = kubernetes_objects("StatefulSet").values()
        arguments = redis_set["spec"]["template"]["spec"]["containers"][0]["args"]
    assert arguments[0] == "redis-server"
    port = free_port()
    process = subprocess.Popen(
        [find_redis_server(), *arguments[1:], "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    client = redis.Redis(port=port, decode_responses=True, socket_connect_timeout=0.5)
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode(errors="replace") if process.stdout else ""
                pytest.fail(f"redis-server refused {shlex.join(arguments)}: {output.strip()[-500:]}")
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        config = client.config_get("*")
        assert config["appendonly"] == "yes"
        assert config["appendfsync"] == "everysec"
        assert config["maxmemory-policy"] == "noeviction"
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()


# -- the worker heartbeat, with real worker processes ---------------------------------------------


def probe(heartbeat_file: Path | None, *arguments: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SINCH_", "KAKAO_"))}
    if heartbeat_file is not None:
        env["KAKAO_DISPATCH_HEARTBEAT_FILE"] = str(heartbeat_file)
    return subprocess.run(
        [sys.executable, "-m", "worker.heartbeat", *arguments], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=30,
    )  # fmt: skip


def heartbeat_worker(redis_url: str, heartbeat_file: Path, log_path: Path) -> CeleryProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SINCH_", "KAKAO_"))}
    env.update(
        KAKAO_DISPATCH_REDIS_URL=redis_url,
        KAKAO_DISPATCH_HEARTBEAT_FILE=str(heartbeat_file),
        KAKAO_DISPATCH_HEARTBEAT_INTERVAL="0.2",
        PYTHONUNBUFFERED="1",
    )
    return worker_process(env, log_path, name="heartbeat", concurrency=1)


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)


def age(path: Path) -> float:
    return time.time() - path.stat().st_mtime


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.slow
def test_worker_touches_the_heartbeat_file_while_consuming_and_the_probe_fails_when_its_loop_hangs(
    tmp_path: Path,
) -> None:
    heartbeat_file = tmp_path / "run" / "heartbeat"  # the directory is created by the bootstep
    with RedisServer() as server:  # its own: this worker must not take other tests' messages
        worker = heartbeat_worker(server.url, heartbeat_file, tmp_path / "worker.log").start()
        try:
            check_heartbeat_of_running_worker(worker, heartbeat_file)
        finally:
            worker.stop()
    assert worker.process is not None and worker.process.returncode == 0
    assert not heartbeat_file.exists(), "a stopped worker must not look alive"
    gone = probe(heartbeat_file)
    assert gone.returncode == 1 and "does not exist" in one_line(gone)


def check_heartbeat_of_running_worker(worker: CeleryProcess, heartbeat_file: Path) -> None:
    """The file is touched over and over; a frozen event loop makes it stale; thawed, it is fresh again."""
    assert heartbeat_file.exists()
    first = heartbeat_file.stat().st_mtime
    wait_until(lambda: heartbeat_file.stat().st_mtime > first + 0.5, 5, "the file is touched again and again")
    assert probe(heartbeat_file, "--max-age", "2").returncode == 0

    assert worker.process is not None
    os.kill(worker.process.pid, signal.SIGSTOP)  # the main process, whose event loop touches the file
    try:
        wait_until(lambda: age(heartbeat_file) > 1.5, 5, "the file goes stale")
        stale = probe(heartbeat_file, "--max-age", "1")
    finally:
        os.kill(worker.process.pid, signal.SIGCONT)
    assert stale.returncode == 1
    expected = rf"heartbeat file {re.escape(str(heartbeat_file))} is \d+ s old \(limit 1 s\): .+"
    assert re.fullmatch(expected, one_line(stale))
    wait_until(lambda: age(heartbeat_file) < 0.5, 5, "touching resumes with the event loop")
    assert probe(heartbeat_file, "--max-age", "1").returncode == 0


@pytest.mark.slow
def test_heartbeat_stops_while_the_broker_is_unreachable_and_resumes_when_it_is_back(tmp_path: Path) -> None:
    heartbeat_file = tmp_path / "heartbeat"
    with RedisServer() as server:
        worker = heartbeat_worker(server.url, heartbeat_file, tmp_path / "worker.log").start()
        try:
            assert probe(heartbeat_file, "--max-age", "2").returncode == 0
            server.stop()
            wait_until(lambda: "Connection to broker lost" in worker.log(), 10, "the worker notices")
            time.sleep(2.0)
            assert age(heartbeat_file) > 1.5, "no touches without a consumer"
            assert probe(heartbeat_file, "--max-age", "1").returncode == 1
            server.start()
            wait_until(lambda: age(heartbeat_file) < 0.5, 30, "touching resumes after reconnecting")
            assert probe(heartbeat_file, "--max-age", "1").returncode == 0
        finally:
            worker.stop()


def test_heartbeat_probe_says_in_one_line_what_is_wrong(tmp_path: Path) -> None:
    unset = probe(None)
    assert unset.returncode == 1
    assert one_line(unset) == "no heartbeat file: set KAKAO_DISPATCH_HEARTBEAT_FILE or give --file"
    heartbeat_file = tmp_path / "heartbeat"
    heartbeat_file.touch()
    assert probe(heartbeat_file, "--max-age", "60").returncode == 0
    assert probe(None, "--file", str(heartbeat_file)).returncode == 0
    os.utime(heartbeat_file, (time.time() - 120, time.time() - 120))
    stale = probe(heartbeat_file, "--max-age", "60")
    assert stale.returncode == 1 and " is 120 s old (limit 60 s)" in one_line(stale)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SINCH_", "KAKAO_"))}
    env["KAKAO_DISPATCH_HEARTBEAT_INTERVAL"] = "often"
    bad = subprocess.run(
        [sys.executable, "-m", "worker.heartbeat"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert bad.returncode == 1
    assert one_line(bad).startswith("bad environment setting KAKAO_DISPATCH_HEARTBEAT_INTERVAL: ")


def test_heartbeat_bootstep_is_registered_and_off_without_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.celery import create_app
    from worker.settings import get_settings

    assert "worker.heartbeat:Heartbeat" in create_app().steps["consumer"]
    monkeypatch.delenv("KAKAO_DISPATCH_HEARTBEAT_FILE", raising=False)
    get_settings.cache_clear()
    try:
        assert heartbeat.Heartbeat(None).include_if(None) is False
        monkeypatch.setenv("KAKAO_DISPATCH_HEARTBEAT_FILE", "/tmp/kakao-dispatch/heartbeat")
        get_settings.cache_clear()
        assert heartbeat.Heartbeat(None).include_if(None) is True
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
