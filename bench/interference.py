"""How busy the rest of the machine was during a benchmark: CPU time of processes that are not ours (/proc).

A sampler thread reads every process's CPU time once a second; a process is ours when this process is
among its ancestors. Other processes' CPU time between samples, over the elapsed time, is the number of
cores the rest of the machine took from the benchmark on average (short-lived processes that start and
end between two samples are missed). Its /proc readers also give bench.stack the CPU time of our own processes.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def stat_fields(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after "(comm)", starting with the state."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()


def cpu_ticks(fields: list[str]) -> int:
    """User + system CPU time in clock ticks (utime and stime, fields 14 and 15 of stat)."""
    return int(fields[11]) + int(fields[12])


def snapshot() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, CPU ticks) for every process."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = stat_fields(int(entry.name))
                found[int(entry.name)] = (int(fields[1]), cpu_ticks(fields))
    return found


def descendants(processes: dict[int, tuple[int, int]], root: int) -> list[int]:
    """`root` and every descendant, from the parent ids of a `snapshot()`."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in processes.items():
        children.setdefault(parent, []).append(pid)
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, []))
    return found


class InterferenceSampler:
    """Started once per benchmark process; `cores()` is the other processes' mean CPU use so far."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.other_seconds = 0.0
        self.started = time.monotonic()
        self._previous = snapshot()
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
        current = snapshot()
        ours = set(descendants(current, os.getpid()))
        for pid, (_, ticks) in current.items():
            if pid in ours:
                continue
            before = self._previous.get(pid)
            self.other_seconds += (max(0, ticks - before[1]) if before else ticks) / TICKS  # new: all of it is new
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
