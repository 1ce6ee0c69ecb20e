"""Every benchmark runs at its smallest size and reports sensible figures (no speed is asserted here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import bench_deferral, bench_dispatch, bench_enqueue, bench_ratelimit, bench_receipts, bench_simulator
from bench.common import document, write_result
from bench.report import load_results, render

pytestmark = pytest.mark.slow


def positive(spread: dict[str, float]) -> bool:
    return 0 < spread["min"] <= spread["median"] <= spread["max"]


def test_enqueue_benchmark_measures_both_ways_and_profiles_the_producer() -> None:
    results = bench_enqueue.run(jobs=50, rounds=1, profile_jobs=50)
    assert positive(results["producer_send_many_jobs_per_s"])
    assert positive(results["plain_send_task_loop_jobs_per_s"])
    parts = results["profile"]["parts"]
    assert parts["rules check (Producer.check)"]["pct"] > 0
    assert parts["job records (JobStore.create_many)"]["pct"] > 0
    assert results["profile"]["top_functions"]


def test_dispatch_benchmark_sends_every_job_and_compares_with_the_noop_ceiling() -> None:
    results = bench_dispatch.run(jobs=20, rounds=1, concurrency=1, latency_seconds=0.3)
    assert positive(results["dispatch_jobs_per_s"]) and positive(results["noop_jobs_per_s"])
    [latency] = results["runs"]["latency"]
    assert latency["sent"] == latency["jobs"] > 0
    assert 0 < latency["p50_ms"] <= latency["p99_ms"]
    assert results["worker_cpu_ms_per_job"]["median"] > 0
    assert results["in_process_profile"]["parts"]["messages:send (SinchClient.send_message)"]["pct"] > 0


def test_receipts_benchmark_delivers_every_job_through_the_gateway() -> None:
    results = bench_receipts.run(jobs=20, rounds=1, concurrency=1, connections=2)
    assert positive(results["gateway_callbacks_per_s"])
    assert results["end_to_end_callbacks_per_s"]["median"] <= results["gateway_callbacks_per_s"]["median"]


def test_deferral_benchmark_parks_jobs_in_redis_and_releases_them_all() -> None:
    results = bench_deferral.run(jobs=200, rounds=1, concurrency=1, settle=0.2)
    assert results["redis_bytes_per_job"]["median"] > 100
    assert results["worker_rss_before_mib"]["median"] > 0
    assert positive(results["release_jobs_per_s"])


def test_ratelimit_benchmark_counts_the_sends_in_the_window() -> None:
    results = bench_ratelimit.run(rates=[40], window=0.6, warmup=0.2, rounds=1, concurrency=1)
    scenario = results["40_per_s"]
    assert 20 <= scenario["achieved_per_s"]["median"] <= 60
    assert scenario["busiest_second"]["median"] >= scenario["quietest_second"]["median"]


def test_simulator_benchmark_measures_both_scenarios() -> None:
    results = bench_simulator.run(seconds=0.2, connections=2, rounds=1, warmup=0.05)
    assert positive(results["no_webhook"]["sends_per_s"]) and positive(results["with_webhook"]["sends_per_s"])


def test_report_renders_a_fresh_result_and_every_stored_one(tmp_path: Path) -> None:
    results = bench_enqueue.run(jobs=20, rounds=1, profile_jobs=20)
    write_result(document("enqueue", "enqueue", {"jobs": 20}, results), tmp_path / "enqueue.json")
    fresh = render(load_results(tmp_path))
    assert "## enqueue" in fresh and "`Producer.send_many`" in fresh and "Where a producer's time goes" in fresh
    stored = load_results()
    report = render(stored)
    assert all(f"## {result['benchmark']}" in report for result in stored)
