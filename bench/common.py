"""What every benchmark shares: the mode (quick or full), the machine and versions, spreads, the results file."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench import interference

RESULTS_DIR = Path(__file__).resolve().parent / "results"


class BenchmarkError(RuntimeError):
    """A benchmark could not measure what it set out to (a process did not start, jobs went missing)."""


def run_main(main: Callable[[], None]) -> int:
    """Run a benchmark's main; a failure is one line on stderr and exit code 1, not a traceback."""
    from producers.processes import ProcessFailed
    from worker.redis_server import RedisServerError

    interference.start()
    try:
        main()
    except (BenchmarkError, ProcessFailed, RedisServerError) as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("benchmark interrupted", file=sys.stderr)
        return 130
    return 0


def alimtalk_requests(count: int, offset: int = 0) -> list[dict[str, Any]]:
    """AlimTalk send requests (one template, a parameter each) to distinct Korean mobile numbers."""
    return [
        {"type": "alimtalk", "to": {"msisdn": f"010-{5000 + i // 10000:04d}-{i % 10000:04d}"},
         "template": {"id": "package_template", "parameters": {"package_id": f"P{i}"}}}
        for i in range(offset, offset + count)
    ]  # fmt: skip


def friendtalk_requests(count: int, offset: int = 0) -> list[dict[str, Any]]:
    """FriendTalk text requests to distinct Korean mobile numbers."""
    return [
        {"type": "friendtalk", "to": {"msisdn": f"010-{5000 + i // 10000:04d}-{i % 10000:04d}"},
         "message": {"text_message": {"text": f"겨울 세일이 시작되었습니다. 쿠폰 번호 W{i:07d}"}}}
        for i in range(offset, offset + count)
    ]  # fmt: skip


def parse_instant(text: str) -> float:
    """Unix seconds of an RFC 3339 instant (`...Z` or with an offset)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def mode() -> str:
    """`full` when BENCH=full, else `quick` (sized for a CI machine)."""
    return "full" if os.environ.get("BENCH", "").strip().lower() == "full" else "quick"


def spread(values: Sequence[float], digits: int = 1) -> dict[str, Any]:
    """Median and min–max of repeated measurements, with how many runs they come from."""
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "runs": len(values),
    }


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The value at `fraction` (0..1) of sorted values, nearest rank."""
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return float(sorted_values[index])


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def ram_gib() -> float:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def machine() -> dict[str, Any]:
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "ram_gib": ram_gib(), "platform": platform.platform()}


def redis_server_version() -> str:
    from worker.redis_server import RedisServerError, find_redis_server

    try:
        binary = find_redis_server()
    except RedisServerError:
        return "not found"
    output = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    for part in output.split():
        if part.startswith("v="):
            return part[2:]
    return output.strip()


def versions(*extra: str) -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in ("celery", "kombu", "redis", *extra):
        with contextlib.suppress(Exception):
            found["redis-py" if name == "redis" else name] = version(name)
    found["redis-server"] = redis_server_version()
    return found


def command(module: str) -> str:
    """The command that produced a result, as a user would type it."""
    prefix = "BENCH=full " if mode() == "full" else ""
    return prefix + " ".join(["python", "-m", module, *sys.argv[1:]])


def argument_parser(doc: str | None) -> argparse.ArgumentParser:
    """A benchmark's command line: its docstring's first line as description, `--output` to write elsewhere."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--output", type=Path)
    return parser


def document(
    name: str, title: str, settings: dict[str, Any], results: dict[str, Any], *extra_versions: str
) -> dict[str, Any]:
    """The results of `python -m bench.bench_<name>`: what was measured, how, where, when, with which versions."""
    return {
        "benchmark": name,
        "title": title,
        "mode": mode(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command(f"bench.bench_{name}"),
        "machine": machine(),
        "other_processes_cores": interference.other_cores(),
        "versions": versions(*extra_versions),
        "settings": settings,
        "results": results,
    }


def write_result(result: dict[str, Any], output: Path | None = None) -> Path:
    """Write bench/results/<name>.json (or `output`) atomically; returns the path."""
    path = output or RESULTS_DIR / f"{result['benchmark']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.tmp")
    partial.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


def save(
    name: str, title: str, settings: dict[str, Any], results: dict[str, Any], output: Path | None, *extra_versions: str
) -> None:
    """Write the results document (to `output`, else bench/results/<name>.json) and say where."""
    print(f"wrote {write_result(document(name, title, settings, results, *extra_versions), output)}")
