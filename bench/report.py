"""BENCHMARKS.md from bench/results/*.json (`python -m bench --report`): nothing is measured here."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR

REPORT = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
ORDER = ["enqueue", "dispatch", "receipts", "deferral", "ratelimit", "simulator"]
#: A row of a figures table: figure, median, min–max, runs, note.
Row = tuple[str, str, str, str, str]


def number(value: float | int | None, digits: int = 1) -> str:
    """Thousands separated; no decimals from 1,000 up (a rate of 17,645 jobs/s needs none)."""
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.{digits}f}"


def figure(
    label: str, value: dict[str, Any] | float | int | None, unit: str = "", note: str = "", digits: int = 1
) -> Row:
    """One row: a spread {median, min, max, runs} or a single value."""
    suffix = f" {unit}" if unit else ""
    if isinstance(value, dict):
        low, high = number(value["min"], digits), number(value["max"], digits)
        return (label, number(value["median"], digits) + suffix, f"{low}–{high}", str(value.get("runs", "")), note)
    return (label, number(value, digits) + suffix, "", "", note)


def table(rows: list[Row]) -> list[str]:
    lines = ["| figure | median | min–max | runs | note |", "|---|---:|---:|---:|---|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _met(flag: bool) -> str:
    return "goal met" if flag else "goal **not met**"


def enqueue_rows(results: dict[str, Any]) -> list[Row]:
    ours = results["producer_send_many_jobs_per_s"]
    goal = results.get("goal_jobs_per_s", 10_000)
    gap = goal - ours["median"]
    note = _met(ours["median"] >= goal) + f" (≥ {goal:,}/s)" + (f"; gap {gap:,.0f} jobs/s" if gap > 0 else "")
    return [
        figure("`Producer.send_many` (rules, record, event, message)", ours, "jobs/s", note, 0),
        figure(
            "plain loop of Celery `send_task` (message only)",
            results["plain_send_task_loop_jobs_per_s"],
            "jobs/s",
            "",
            0,
        ),
        figure("ratio, producer / plain loop", results["ratio_median"], "×", "medians", 2),
        figure("producer time per job", results.get("producer_us_per_job"), "µs", "from the median"),
        figure("redis-server CPU per job", results.get("redis_cpu_ms_per_job"), "ms", "INFO cpu", 3),
    ]


def dispatch_rows(results: dict[str, Any]) -> list[Row]:
    ratio = results["dispatch_to_noop_ratio"]
    return [
        figure("dispatch through real workers to the simulator", results["dispatch_jobs_per_s"], "jobs/s", "", 0),
        figure("no-op task, same worker settings (ceiling)", results["noop_jobs_per_s"], "jobs/s", "", 0),
        figure("dispatch / no-op", ratio, "", _met(results["goal_half_of_noop_met"]) + " (≥ 0.5)", 3),
        figure("enqueue→send latency p50", results["latency_p50_ms"], "ms",
               f"at {results['latency_offered_jobs_per_s']['median']:,.0f} jobs/s offered (half the throughput)"),
        figure("enqueue→send latency p99", results["latency_p99_ms"], "ms"),
        figure("worker CPU per job (main + pool processes)", results["worker_cpu_ms_per_job"], "ms", "", 3),
        figure("worker CPU per job, no-op", results["noop_worker_cpu_ms_per_job"], "ms", "", 3),
        figure("redis-server CPU per job", results["redis_cpu_ms_per_job"], "ms",
               f"no-op: {results['noop_redis_cpu_ms_per_job']['median']:.3f} ms", 3),
        figure("simulator CPU per job", results["simulator_cpu_ms_per_job"], "ms", "", 3),
    ]  # fmt: skip


def receipts_rows(results: dict[str, Any]) -> list[Row]:
    return [
        figure("gateway: signed callbacks accepted", results["gateway_callbacks_per_s"], "callbacks/s", "", 0),
        figure(
            "end to end: POST until every job `delivered`", results["end_to_end_callbacks_per_s"], "callbacks/s", "", 0
        ),
        figure("POST latency p50", results["post_p50_ms"], "ms"),
        figure("POST latency p99", results["post_p99_ms"], "ms"),
        figure("gateway CPU per callback", results["gateway_cpu_ms_per_callback"], "ms", "", 3),
        figure("worker CPU per callback", results["worker_cpu_ms_per_callback"], "ms", "", 3),
        figure("redis-server CPU per callback", results["redis_cpu_ms_per_callback"], "ms", "", 3),
    ]


def deferral_rows(results: dict[str, Any]) -> list[Row]:
    before, change = results["worker_rss_before_mib"]["median"], results["worker_rss_change_mib"]
    flat = max(abs(change["min"]), abs(change["max"])) <= max(2.0, 0.02 * before)
    breakdown = results.get("memory_breakdown_bytes", {})
    parts = ", ".join(f"{name.replace('_', ' ')} {value:,}" for name, value in breakdown.items())
    return [
        figure("enqueue of deferred FriendTalk jobs", results["enqueue_jobs_per_s"], "jobs/s", "", 0),
        figure("Redis memory per job (used_memory delta / N)", results["redis_bytes_per_job"], "bytes", parts, 0),
        figure("Redis used_memory with the jobs parked", results["redis_used_memory_mib"], "MiB"),
        figure("worker RSS before", results["worker_rss_before_mib"], "MiB"),
        figure("worker RSS after the jobs were parked", results["worker_rss_after_mib"], "MiB"),
        figure("worker RSS change", change, "MiB", "flat" if flat else "**not flat**", 2),
        figure("release at the opening into the dispatch queue", results["release_jobs_per_s"], "jobs/s",
               f"{results['release_time_in_publishing_pct']['median']:.0f} % of it publishing"),
    ]  # fmt: skip


def ratelimit_rows(results: dict[str, Any]) -> list[Row]:
    rows = []
    for scenario in results.values():
        rate = scenario["configured_per_s"]
        rows.append(figure(f"configured {rate:g}/s: achieved", scenario["achieved_per_s"], "sends/s", "", 2))
        rows.append(figure(f"configured {rate:g}/s: error", scenario["error_pct"], "%", "", 2))
        if "gap_beyond_interval_ms" in scenario:
            rows.append(figure(f"configured {rate:g}/s: mean gap beyond 1/R", scenario["gap_beyond_interval_ms"], "ms",
                               f"the interval is {1000 / rate:g} ms", 3))  # fmt: skip
        rows.append(figure(f"configured {rate:g}/s: busiest 1 s", scenario["busiest_second"], "sends",
                           f"quietest {scenario['quietest_second']['median']:.0f}; "
                           f"HTTP 429 from the simulator: {scenario['http_429']}", 0))  # fmt: skip
    return rows


def simulator_rows(results: dict[str, Any]) -> list[Row]:
    rows = []
    for name, scenario in results.items():
        what = "sends only" if name == "no_webhook" else "each send also posts a signed receipt"
        rows.append(figure(f"messages:send, {what}", scenario["sends_per_s"], "sends/s", "", 0))
        rows.append(figure(f"{what}: latency p50", scenario["p50_ms"], "ms", "", 2))
        rows.append(figure(f"{what}: latency p99", scenario["p99_ms"], "ms", "", 2))
    return rows


RENDERERS: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "enqueue": enqueue_rows,
    "dispatch": dispatch_rows,
    "receipts": receipts_rows,
    "deferral": deferral_rows,
    "ratelimit": ratelimit_rows,
    "simulator": simulator_rows,
}


def profile_lines(title: str, profile: dict[str, Any]) -> list[str]:
    lines = ["", f"{title} ({profile['items']:,} items, {profile['profiled_seconds']} s profiled):", "",
             "| part | share of the time | µs per item | calls per item |", "|---|---:|---:|---:|"]  # fmt: skip
    for label, part in profile["parts"].items():
        if part.get("pct") is None:
            continue
        indent = "&nbsp;&nbsp;&nbsp;" * ((len(label) - len(label.lstrip())) // 2)
        calls = part.get("calls_per_item", "")
        calls = "< 0.01" if calls == 0 else calls  # once per batch
        lines.append(f"| {indent}{label.strip()} | {part['pct']} % | {part['us_per_item']:,} | {calls} |")
    lines += [
        "",
        "Parts overlap: an indented part is inside the one above it; the Redis lines cut across the others.",
        "cProfile slows Python code more than waiting, so the shares are indicative.",
    ]
    return lines


def load_results(directory: Path = RESULTS_DIR) -> list[dict[str, Any]]:
    found = [json.loads(path.read_text(encoding="utf-8")) for path in sorted(directory.glob("*.json"))]
    rank = {name: index for index, name in enumerate(ORDER)}
    return sorted(found, key=lambda result: (rank.get(result["benchmark"], len(ORDER)), result["benchmark"]))


def _hardware(result: dict[str, Any]) -> str:
    machine = result["machine"]
    return f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, {machine.get('ram_gib', '?')} GiB RAM"


def _all_versions(results: list[dict[str, Any]]) -> dict[str, str]:
    """Every version any benchmark recorded; one that differs between benchmarks lists each value."""
    found: dict[str, list[str]] = {}
    for result in results:
        for name, value in result["versions"].items():
            if value not in found.setdefault(name, []):
                found[name].append(value)
    return {name: " / ".join(values) for name, values in found.items()}


def _settings(settings: dict[str, Any]) -> Iterator[str]:
    for name, value in settings.items():
        yield f"{name.replace('_', ' ')}: {value}"


def goals(results: list[dict[str, Any]]) -> list[str]:
    """The headline figures and the goals of issue 8, one bullet each, for the benchmarks present."""
    found = {result["benchmark"]: result["results"] for result in results}
    lines = []
    if "enqueue" in found:
        rate, goal = found["enqueue"]["producer_send_many_jobs_per_s"]["median"], found["enqueue"]["goal_jobs_per_s"]
        verdict = "met" if rate >= goal else f"not met, {goal - rate:,.0f} jobs/s short"
        lines.append(f"enqueue: {rate:,.0f} jobs/s in one process with `Producer.send_many` (goal {goal:,}: {verdict})")
    if "dispatch" in found:
        dispatch = found["dispatch"]
        ratio = dispatch["dispatch_to_noop_ratio"]["median"]
        verdict = "met" if dispatch["goal_half_of_noop_met"] else "not met"
        lines.append(
            f"dispatch: {dispatch['dispatch_jobs_per_s']['median']:,.0f} jobs/s, {ratio:.2f} of the no-op ceiling "
            f"({dispatch['noop_jobs_per_s']['median']:,.0f} jobs/s; goal ≥ 0.5: {verdict}); enqueue→send p50 "
            f"{dispatch['latency_p50_ms']['median']:,.0f} ms, p99 {dispatch['latency_p99_ms']['median']:,.0f} ms; "
            f"{dispatch['worker_cpu_ms_per_job']['median']:.2f} ms worker CPU per job"
        )
    if "receipts" in found:
        receipts = found["receipts"]
        lines.append(
            f"receipts: {receipts['gateway_callbacks_per_s']['median']:,.0f} signed callbacks/s accepted by the "
            f"gateway, {receipts['end_to_end_callbacks_per_s']['median']:,.0f}/s into job records"
        )
    if "deferral" in found:
        deferral = found["deferral"]
        change = deferral["worker_rss_change_mib"]
        lines.append(
            f"deferral: {deferral['redis_bytes_per_job']['median']:,.0f} bytes of Redis per parked job, worker RSS "
            f"change {change['min']:+.2f} to {change['max']:+.2f} MiB, release at the opening "
            f"{deferral['release_jobs_per_s']['median']:,.0f} jobs/s"
        )
    if "ratelimit" in found:
        scenarios = [
            f"{scenario['configured_per_s']:g}/s → {scenario['achieved_per_s']['median']:,.2f}/s "
            f"({scenario['error_pct']['median']:+.1f} %)"
            for scenario in found["ratelimit"].values()
        ]
        lines.append("rate limit, two worker nodes: " + ", ".join(scenarios))
    return [f"- {line}" for line in lines]


def render(results: list[dict[str, Any]]) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Generated by `python -m bench --report` from `bench/results/*.json`; do not edit by hand.",
        "`make bench` runs every benchmark in quick mode (sized for a CI machine, a few minutes) and regenerates",
        "this file; `BENCH=full make bench` runs the full mode (each measurement repeated at least 3 times).",
        "Figures are medians of the runs with their min–max. Every benchmark starts its own redis-server, simulator,",
        "workers and gateway on this machine, so all of them share its cores; each also records how many cores",
        "other processes on the machine used meanwhile (from /proc): figures are comparable when that is near 0.",
    ]
    lines += ["", "## Summary", "", *goals(results)]
    machines = sorted({_hardware(result) for result in results})
    lines += ["", "## Machine and versions", ""] + [f"- {hardware}" for hardware in machines]
    lines.append("- " + ", ".join(f"{name} {value}" for name, value in _all_versions(results).items()))
    for result in results:
        name = result["benchmark"]
        lines += ["", f"## {name}", "", f"{result.get('title', name)}.", ""]
        other = result.get("other_processes_cores")
        busy = f", other processes on the machine used {other} cores on average meanwhile" if other is not None else ""
        lines.append(f"`{result['command']}` — {result.get('mode', 'quick')} mode, {result['date']}{busy}")
        if len(machines) > 1:
            lines.append(f"on {_hardware(result)}")
        lines += ["", "Settings: " + "; ".join(_settings(result.get("settings", {}))) + ".", ""]
        renderer = RENDERERS.get(name)
        if renderer is not None:
            lines += table(renderer(result["results"]))
        if name == "enqueue" and "profile" in result["results"]:
            lines += profile_lines("Where a producer's time goes (cProfile)", result["results"]["profile"])
        if name == "dispatch" and "in_process_profile" in result["results"]:
            profile = result["results"]["in_process_profile"]
            lines += profile_lines(
                f"One job's dispatch in one process without Celery, {profile['jobs_per_s']:,.0f} jobs/s "
                f"({profile['ms_per_job']} ms per job), where the time goes (cProfile)",
                profile,
            )
        lines += [f"- {note}" for note in result.get("notes", [])]
    return "\n".join(lines) + "\n"


def write_report(directory: Path = RESULTS_DIR, output: Path = REPORT) -> Path:
    output.write_text(render(load_results(directory)), encoding="utf-8")
    return output
