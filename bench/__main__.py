"""`make bench`: run every benchmark in turn; each writes its figures to bench/results/<name>.json."""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = ["bench.bench_simulator", "bench.bench_enqueue"]


def main() -> int:
    for module in BENCHMARKS:
        print(f"== {module}", flush=True)
        code = subprocess.call([sys.executable, "-m", module])
        if code != 0:
            print(f"{module} failed with exit code {code}", file=sys.stderr)
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
