"""How busy the rest of the machine was during a benchmark: CPU time of processes that are not ours (/proc).

A sampler thread reads every process's CPU time once a second; a process is ours when this process is
among its ancestors. Other processes' CPU time between samples, over the elapsed time, is the number of
cores the rest of the machine took from the benchmark on average (short-lived processes that start and
end between two samples are missed).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _snapshot() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, CPU ticks) for every process."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                raw = (entry / "stat").read_text()
                fields = raw[raw.rindex(")") + 2 :].split()
                found[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return found


def _ours(snapshot: dict[int, tuple[int, int]], root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in snapshot.items():
        children.setdefault(parent, []).append(pid)
    found, pending = set(), [root]
    while pending:
        pid = pending.pop()
        found.add(pid)
        pending.extend(children.get(pid, []))
    return found


class InterferenceSampler:
    """Started once per benchmark process; `cores()` is the other processes' mean CPU use so far."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.other_seconds = 0.0
        self.started = time.monotonic()
        self._previous = _snapshot()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="interference-sampler", daemon=True)

    def start(self) -> InterferenceSampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        with self._lock:
            self._sample()

    def _sample(self) -> None:
        current = _snapshot()
        ours = _ours(current, os.getpid())
        for pid, (_, ticks) in current.items():
            if pid in ours:
                continue
            before = self._previous.get(pid)
            self.other_seconds += (max(0, ticks - before[1]) if before else ticks) / _TICKS  # new: all of it is new
        self._previous = current

    def cores(self) -> float:
        """Other processes' CPU seconds per second of elapsed time since the start."""
        self.sample()
        return self.other_seconds / max(time.monotonic() - self.started, 1e-9)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.interval + 1)


#: The sampler of this process, when the benchmark runs from its command line (bench.common.run_main).
sampler: InterferenceSampler | None = None


def start() -> None:
    global sampler
    if sampler is None and Path("/proc/self/stat").exists():
        sampler = InterferenceSampler().start()


def other_cores() -> float | None:
    """Mean cores the rest of the machine used since `start()`, or None when nobody started the sampler."""
    return round(sampler.cores(), 2) if sampler is not None else None
