"""Benchmark of the cluster-wide rate limit: the achieved send rate at the simulator for a configured rate.

The stack, fresh for every round: a private redis-server, the simulator enforcing the same rate as
Sinch would (a bucket of R tokens refilled at R/s; beyond it 429), two worker nodes
(`celery -A worker worker -c C` each, KAKAO_DISPATCH_RATE_LIMIT=R) sharing the GCRA in Redis, and beat
(the releaser brings back any job the limiter parked). A backlog of AlimTalk jobs larger than the window
can drain is enqueued at once; the achieved rate is counted from the simulator's `received_at` of each
accepted send over a window that starts after a warm-up (the first send + `warmup` seconds):
achieved = sends in the window / its length, error = (achieved − R) / R. The busiest and quietest
1-second stretch inside the window and the number of 429 answers are reported as well, and how much
longer than the GCRA interval (1/R) the mean gap between two sends was.

Run: `.venv/bin/python -m bench.bench_ratelimit [--rates 20,200] [--window 10] [--rounds R]`.
Writes bench/results/ratelimit.json.
"""

from __future__ import annotations

import bisect
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from bench.common import BenchmarkError, alimtalk_requests, argument_parser, mode, parse_instant, run_main, save, spread
from bench.stack import Beat, Simulator, Worker, base_env, settings_of, start_all
from producers.producer import Producer
from worker.redis_server import RedisServer

WORKER_NODES = 2


def one_second_extremes(times: Sequence[float], start: float, end: float) -> tuple[int, int]:
    """The most and fewest sends in any 1-second stretch inside [start, end] (a shorter window: its count)."""
    if end - start < 1:
        count = bisect.bisect_left(times, end) - bisect.bisect_left(times, start)
        return count, count
    busiest, quietest = 0, len(times)
    moment = start
    while moment + 1 <= end + 1e-9:
        count = bisect.bisect_left(times, moment + 1) - bisect.bisect_left(times, moment)
        busiest, quietest = max(busiest, count), min(quietest, count)
        moment += 0.01
    return busiest, quietest


def ratelimit_round(rate: float, window: float, warmup: float, concurrency: int, log_dir: Path) -> dict[str, Any]:
    backlog = int(rate * (warmup + window) * 1.3) + 20
    with RedisServer() as server, Simulator(log_dir, rate_limit=rate) as simulator:
        env = base_env(server.url, **simulator.sinch_env(), KAKAO_DISPATCH_RATE_LIMIT=f"{rate:g}")
        settings = settings_of(env)
        nodes = [Worker(env, log_dir, name=f"rate{rate:g}-{index}", concurrency=concurrency)
                 for index in range(WORKER_NODES)]  # fmt: skip
        beat = Beat(env, log_dir)
        try:
            start_all([*nodes, beat])
            client = redis.Redis.from_url(server.url, decode_responses=True)
            producer = Producer(client, settings=settings)
            producer.send_many(alimtalk_requests(backlog))
            deadline, first_send = time.monotonic() + warmup + window + 30, 0.0
            while time.monotonic() < deadline:
                accepted = simulator.call("GET", "/_sim/stats")["accepted"]
                first_send = first_send or (time.monotonic() if accepted else 0.0)
                if accepted >= backlog or (first_send and time.monotonic() - first_send > warmup + window + 0.5):
                    break
                time.sleep(0.2)
            messages = simulator.call("GET", "/_sim/messages")
            stats = simulator.call("GET", "/_sim/stats")
            producer.close()
        finally:
            for process in (beat, *nodes):
                process.stop()
    times = sorted(parse_instant(item["received_at"]) for item in messages if item["http_status"] == 200)
    if not times:
        raise BenchmarkError("no send reached the simulator")
    start = times[0] + warmup
    end = start + window
    in_window = bisect.bisect_left(times, end) - bisect.bisect_left(times, start)
    if times[-1] < end:
        raise BenchmarkError(f"the backlog of {backlog} drained before the window ended ({len(times)} sends)")
    achieved = in_window / window
    busiest, quietest = one_second_extremes(times, start, end)
    return {
        "achieved_per_s": achieved,
        "error_pct": 100 * (achieved - rate) / rate,
        "mean_gap_ms": 1000 / achieved,
        "gap_beyond_interval_ms": 1000 / achieved - 1000 / rate,
        "busiest_second": busiest,
        "quietest_second": quietest,
        "http_429": int(stats["http_status"].get("429", 0)),
        "backlog": backlog,
    }


def run(*, rates: Sequence[float], window: float, warmup: float, rounds: int, concurrency: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ratelimit-") as directory:
        for rate in rates:
            runs = []
            for round_number in range(rounds):
                runs.append(ratelimit_round(rate, window, warmup, concurrency, Path(directory)))
                print(f"{rate:g}/s round {round_number + 1}: achieved {runs[-1]['achieved_per_s']:.2f}/s "
                      f"({runs[-1]['error_pct']:+.2f} %), 429: {runs[-1]['http_429']}", flush=True)  # fmt: skip
            results[f"{rate:g}_per_s"] = {
                "configured_per_s": rate,
                "achieved_per_s": spread([figures["achieved_per_s"] for figures in runs], 2),
                "error_pct": spread([figures["error_pct"] for figures in runs], 2),
                "gap_beyond_interval_ms": spread([figures["gap_beyond_interval_ms"] for figures in runs], 3),
                "busiest_second": spread([figures["busiest_second"] for figures in runs], 0),
                "quietest_second": spread([figures["quietest_second"] for figures in runs], 0),
                "http_429": sum(figures["http_429"] for figures in runs),
                "runs": runs,
            }
    return results


def main() -> None:
    full = mode() == "full"
    parser = argument_parser(__doc__)
    parser.add_argument("--rates", default="20,200", help="configured rates, comma-separated")
    parser.add_argument("--window", type=float, default=30.0 if full else 10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3 if full else 1)
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 2, help="pool processes per node (-c)")
    arguments = parser.parse_args()
    rates = [float(rate) for rate in arguments.rates.split(",")]
    results = run(rates=rates, window=arguments.window, warmup=arguments.warmup, rounds=arguments.rounds,
                  concurrency=arguments.concurrency)  # fmt: skip
    settings = {
        "rates": rates,
        "window_s": arguments.window,
        "warmup_s": arguments.warmup,
        "rounds": arguments.rounds,
        "workers": f"{WORKER_NODES} nodes, prefork -c {arguments.concurrency} each, and beat",
        "simulator": "rate limit = the configured rate (429 beyond it), no latency",
    }
    title = "rate limit: achieved sends/s at the simulator for KAKAO_DISPATCH_RATE_LIMIT"
    save("ratelimit", title, settings, results, arguments.output)


if __name__ == "__main__":
    sys.exit(run_main(main))
