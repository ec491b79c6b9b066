"""Latency and throughput of run_program with warm sandbox workers, and what a worker costs.

    python -m benchmarks.bench_program [--n 500] [--threads 2] [--programs 1000]

Prints p50/p99 latency of a typical 6-line program (target: p50 <= 5 ms) and of the static check
alone, the throughput of running 1,000 programs from 2 threads, the time a fresh worker takes to
be ready, and how long a timed-out call takes to be answered.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

from eotd import run_program
from eotd.program import check_program
from eotd.sandbox import _POOL, shutdown, warm_up

TYPICAL = """eggs_per_day = 16
eaten = 3
baked = 4
left = eggs_per_day - eaten - baked
price = 2
ans = left * price
"""


def _timed_ms(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - start) * 1000


def _summary(label: str, millis: list[float]) -> str:
    ranked = sorted(millis)
    p50 = ranked[len(ranked) // 2]
    p99 = ranked[min(len(ranked) - 1, round(0.99 * (len(ranked) - 1)))]
    return f"{label:34s} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   (n={len(ranked)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="sequential runs for the latencies")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--programs", type=int, default=1000, help="programs for the throughput")
    args = parser.parse_args()

    shutdown()
    start = time.perf_counter()
    warm_up()
    print(f"pool of {_POOL.size} workers ready in {time.perf_counter() - start:.2f} s (cold start)")
    assert run_program(TYPICAL).answer == 18.0
    print(
        _summary("typical 6-line program", [_timed_ms(run_program, TYPICAL) for _ in range(args.n)])
    )
    print(
        _summary("static check alone", [_timed_ms(check_program, TYPICAL) for _ in range(args.n)])
    )

    programs = [TYPICAL.replace("16", str(10 + i % 90)) for i in range(args.programs)]
    start = time.perf_counter()
    with ThreadPoolExecutor(args.threads) as pool:
        results = list(pool.map(run_program, programs))
    elapsed = time.perf_counter() - start
    assert all(r.ok for r in results)
    print(
        f"{args.programs:,} programs, {args.threads} threads: {elapsed:.2f} s "
        f"({args.programs / elapsed:.0f} programs/s)"
    )

    timeout_ms = _timed_ms(run_program, "while True:\n    pass\n", 0.2)
    print(f"endless loop with timeout 0.2 s answered in {timeout_ms:.0f} ms")
    start = time.perf_counter()
    warm_up()  # waits for the replacement of the killed worker
    print(f"replacement worker ready {time.perf_counter() - start:.2f} s later")


if __name__ == "__main__":
    main()
