"""Real worker and beat processes for end-to-end tests: `celery -A worker ...` run as a ManagedProcess."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from producers.processes import ManagedProcess


class CeleryProcess(ManagedProcess):
    """`celery -A worker <role> ...`, ready once its log shows `ready_marker`; `kill()` SIGKILLs its process group."""

    def __init__(self, role: str, args: list[str], env: dict[str, str], log_path: Path, ready_marker: str) -> None:
        argv = [sys.executable, "-m", "celery", "-A", "worker", role, *args]
        super().__init__(
            f"celery {role}", argv, env=env, log_path=log_path, ready=lambda process: ready_marker in process.log()
        )
        self.role = role

    def start(self, timeout: float = 30.0) -> CeleryProcess:
        super().start()
        self.wait_ready(time.monotonic() + timeout)
        return self

    def kill(self) -> None:
        """SIGKILL, no warm shutdown: what an OOM kill or a lost node does."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def worker_process(
    env: dict[str, str], log_path: Path, *, name: str, concurrency: int = 2, queues: str = "dispatch,callbacks"
) -> CeleryProcess:
    args = ["-Q", queues, "-c", str(concurrency), "-n", f"{name}@%h", "--without-gossip", "--without-mingle",
            "-l", "INFO"]  # fmt: skip
    return CeleryProcess("worker", args, env, log_path, ready_marker=" ready.")


def beat_process(env: dict[str, str], log_path: Path, schedule_dir: Path) -> CeleryProcess:
    args = ["-s", str(schedule_dir / "beat-schedule"), "--pidfile=", "-l", "INFO"]
    return CeleryProcess("beat", args, env, log_path, ready_marker="beat: Starting")
