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


def _run_all(programs: list[str], threads: int) -> None:
    with ThreadPoolExecutor(threads) as pool:
        assert all(result.ok for result in pool.map(run_program, programs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="sequential runs for the latencies")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--programs", type=int, default=1000, help="programs for the throughput")
    args = parser.parse_args()

    shutdown()
    cold_ms = _timed_ms(warm_up)
    print(f"pool of {_POOL.size} workers ready in {cold_ms / 1000:.2f} s (cold start)")
    assert run_program(TYPICAL).answer == 18.0
    for label, fn in (
        ("typical 6-line program", run_program),
        ("static check alone", check_program),
    ):
        print(_summary(label, [_timed_ms(fn, TYPICAL) for _ in range(args.n)]))

    programs = [TYPICAL.replace("16", str(10 + i % 90)) for i in range(args.programs)]
    seconds = _timed_ms(_run_all, programs, args.threads) / 1000
    rate = args.programs / seconds
    print(f"{args.programs:,} programs, {args.threads} threads: {seconds:.2f} s ({rate:.0f}/s)")

    timeout_ms = _timed_ms(run_program, "while True:\n    pass\n", 0.2)
    print(f"endless loop with timeout 0.2 s answered in {timeout_ms:.0f} ms")
    replaced_ms = _timed_ms(warm_up)  # waits for the fresh worker that replaces the killed one
    print(f"its replacement worker was ready {replaced_ms / 1000:.2f} s later")


if __name__ == "__main__":
    main()
