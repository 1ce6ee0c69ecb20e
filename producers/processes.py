"""Child processes the sandbox starts: each in its own process group with its own log, stopped without leftovers."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


class ProcessFailed(RuntimeError):
    """A child process exited at start-up or did not become ready in time; the message ends with its log tail."""


class ManagedProcess:
    """One command run as a child in a new session (so a SIGKILL reaches its pool children too).

    `ready` is polled after the start until it returns True; the process log (stdout and stderr) goes
    to `log_path`. `stop()` sends SIGTERM to the main process only (Celery's warm shutdown stops its own
    pool), waits, then SIGKILLs whatever is left of the process group.
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str],
        log_path: Path,
        ready: Callable[[ManagedProcess], bool],
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self._ready = ready
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        return self

    def wait_ready(self, deadline: float) -> None:
        """Poll until ready; ProcessFailed when the process exits or `deadline` (monotonic) passes first."""
        while not self._ready(self):
            if self.exit_code is not None:
                raise ProcessFailed(f"{self.name} exited with status {self.exit_code} at start-up{self.tail()}")
            if time.monotonic() > deadline:
                raise ProcessFailed(f"{self.name} was not ready in time{self.tail()}")
            time.sleep(0.05)

    @property
    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 12) -> str:
        last = [line for line in self.log().splitlines() if line.strip()][-lines:]
        return (":\n    " + "\n    ".join(last)) if last else ""

    def stop(self, timeout: float = 15.0) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError, PermissionError):  # pool children that outlived their parent
            os.killpg(process.pid, signal.SIGKILL)
