"""Where the time goes: a cProfile run summarised as shares of named functions and the top functions by own time."""

from __future__ import annotations

import cProfile
import pstats
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = str(Path(__file__).resolve().parent.parent) + "/"
#: (label, path ending, function name): the cumulative time of that function is the label's time.
Part = tuple[str, str, str]


def profile(action: Callable[[], object]) -> pstats.Stats:
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        action()
    finally:
        profiler.disable()
    return pstats.Stats(profiler)


def _entry(stats: pstats.Stats, path: str, function: str) -> tuple[int, float] | None:
    """(calls, cumulative seconds) of the function, the busiest when several match."""
    found = [
        (int(entry[1]), float(entry[3]))  # primitive calls, cumulative time
        for (filename, _, name), entry in stats.stats.items()  # type: ignore[attr-defined]
        if name == function and filename.replace("\\", "/").endswith(path)
    ]
    return max(found, key=lambda calls_seconds: calls_seconds[1]) if found else None


def shares(stats: pstats.Stats, parts: Sequence[Part], per: int) -> dict[str, Any]:
    """Each part's cumulative time: % of the profiled total, µs and calls per item (`per` items were profiled)."""
    total: float = stats.total_tt  # type: ignore[attr-defined]
    result: dict[str, Any] = {"profiled_seconds": round(total, 3), "items": per, "parts": {}}
    for label, path, function in parts:
        found = _entry(stats, path, function)
        if found is None:
            result["parts"][label] = {"pct": None, "missing": f"{path}:{function} not called"}
            continue
        calls, seconds = found
        result["parts"][label] = {
            "pct": round(100 * seconds / total, 1),
            "us_per_item": round(1e6 * seconds / per, 1),
            "calls_per_item": round(calls / per, 2),
        }
    return result


def top_functions(stats: pstats.Stats, count: int = 12) -> list[dict[str, Any]]:
    """The functions with the most own time (tottime), as `file:line(function)`."""
    total: float = stats.total_tt  # type: ignore[attr-defined]
    entries = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)  # type: ignore[attr-defined]
    top = []
    for (filename, line, name), (_, calls, own, cumulative, _) in entries[:count]:
        where = filename.split("site-packages/")[-1].removeprefix(ROOT)
        top.append({"function": f"{where}:{line}({name})", "calls": calls, "own_pct": round(100 * own / total, 1),
                    "cumulative_pct": round(100 * cumulative / total, 1)})  # fmt: skip
    return top
