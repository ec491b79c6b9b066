"""Latency and throughput of solve_equations on realistic systems, with warm sandbox workers.

    python -m benchmarks.bench_equations [--n 300] [--threads 2]

Prints p50/p99 latency for a typical 5-equation linear system (target: p50 <= 5 ms), for a
two-unknown coupled system, and the throughput of solving 1,000 systems from 2 threads.
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from eotd import solve_equations

TYPICAL = """% Weng earns $12 an hour for babysitting. Yesterday she did 50 minutes.
rate = 12
minutes = 50
rate_per_minute = rate / 60
earned = rate_per_minute * minutes
ans = earned
"""
COUPLED = """% Adult tickets cost $8, child tickets $5; 20 tickets sold for $127.
adults + children = 20
8 * adults + 5 * children = 127
ans = adults
"""


def _latencies(text: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        result = solve_equations(text)
        out.append((time.perf_counter() - start) * 1000)
        assert result.ok, result.error
    return out


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    solve_equations(TYPICAL)  # start the warm workers
    for name, text in (("typical 5-equation chain", TYPICAL), ("2-unknown coupled", COUPLED)):
        lat = _latencies(text, args.n)
        print(
            f"{name:28s} p50 {statistics.median(lat):6.2f} ms   p99 {_pct(lat, 99):6.2f} ms"
            f"   (n={args.n})"
        )

    systems = [TYPICAL.replace("50", str(10 + i % 90)) for i in range(1000)]
    start = time.perf_counter()
    with ThreadPoolExecutor(args.threads) as pool:
        results = list(pool.map(solve_equations, systems))
    elapsed = time.perf_counter() - start
    assert all(r.ok for r in results)
    print(
        f"1,000 systems, {args.threads} threads: {elapsed:.2f} s ({1000 / elapsed:.0f} systems/s)"
    )


if __name__ == "__main__":
    main()
