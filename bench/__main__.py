"""`make bench`: run every benchmark in turn (each writes bench/results/<name>.json), then write BENCHMARKS.md.

python -m bench                   quick mode (BENCH=full for the full mode)
python -m bench --only dispatch   some benchmarks only (comma-separated names)
python -m bench --report          regenerate BENCHMARKS.md from the results, measuring nothing
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from bench.common import mode
from bench.report import write_report

BENCHMARKS = {
    "enqueue": "bench.bench_enqueue",
    "dispatch": "bench.bench_dispatch",
    "receipts": "bench.bench_receipts",
    "deferral": "bench.bench_deferral",
    "ratelimit": "bench.bench_ratelimit",
    "simulator": "bench.bench_simulator",
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--report", action="store_true", help="only regenerate BENCHMARKS.md from bench/results")
    parser.add_argument("--only", default="", help=f"comma-separated names among: {', '.join(BENCHMARKS)}")
    arguments = parser.parse_args()
    if not arguments.report:
        names = [name.strip() for name in arguments.only.split(",") if name.strip()] or list(BENCHMARKS)
        unknown = [name for name in names if name not in BENCHMARKS]
        if unknown:
            print(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
            return 2
        for name in names:
            print(f"== {name} ({mode()} mode)", flush=True)
            started = time.monotonic()
            code = subprocess.call([sys.executable, "-m", BENCHMARKS[name]])
            if code != 0:
                print(f"benchmark {name} failed with exit code {code}", file=sys.stderr)
                return code
            print(f"== {name} took {time.monotonic() - started:.0f} s", flush=True)
    print(f"wrote {write_report()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
