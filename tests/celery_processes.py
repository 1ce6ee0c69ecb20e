"""Real worker and beat processes for end-to-end tests, each in its own process group with its own log."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parent.parent


class CeleryProcess:
    """`celery -A worker <role> ...` as a subprocess; `kill()` sends SIGKILL to it and its pool children."""

    def __init__(self, role: str, args: list[str], env: dict[str, str], log_path: Path, ready_marker: str) -> None:
        self.role = role
        self.args = args
        self.env = env
        self.log_path = log_path
        self.ready_marker = ready_marker
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> CeleryProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker", self.role, *self.args],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout
        while self.ready_marker not in self.log():
            if self.process.poll() is not None:
                raise RuntimeError(f"celery {self.role} exited at start:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"celery {self.role} not ready within {timeout} s:\n{self.log()[-3000:]}")
            time.sleep(0.1)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL, no warm shutdown: what an OOM kill or a lost node does."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (warm shutdown), then SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # to the main process only: it stops its pool itself
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        with contextlib.suppress(ProcessLookupError):  # pool children that outlived their parent
            os.killpg(self.process.pid, signal.SIGKILL)

    def __enter__(self) -> CeleryProcess:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def worker_process(
    env: dict[str, str], log_path: Path, *, name: str, concurrency: int = 2, queues: str = "dispatch,callbacks"
) -> CeleryProcess:
    args = ["-Q", queues, "-c", str(concurrency), "-n", f"{name}@%h", "--without-gossip", "--without-mingle",
            "-l", "INFO"]  # fmt: skip
    return CeleryProcess("worker", args, env, log_path, ready_marker=" ready.")


def beat_process(env: dict[str, str], log_path: Path, schedule_dir: Path) -> CeleryProcess:
    args = ["-s", str(schedule_dir / "beat-schedule"), "--pidfile=", "-l", "INFO"]
    return CeleryProcess("beat", args, env, log_path, ready_marker="beat: Starting")
