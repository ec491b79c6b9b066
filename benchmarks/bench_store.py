"""Correction store speed on a real SQLite file and a real PostgreSQL server, side by side:
writes per second and review-queue latency.

    python -m benchmarks.bench_store [--writes 1000] [--threads 8] [--eot 100] [--rows 100000]
                                     [--backends sqlite,postgresql]

Prints corrections written per second through ``Store.add_correction`` (``cot``, whose engine
check is in-process, from 1 thread and from ``--threads`` threads; ``eot``, solved in the sandbox,
from 1 thread) on SQLite with the default ``synchronous=FULL`` and with ``NORMAL``, and on
PostgreSQL (a throwaway local server, ``db.local_postgres``, with its durable defaults: fsync and
synchronous commit on, like SQLite's FULL); then fills a store with ``--rows`` corrections on each
backend and prints p50/p95 of the pending-queue query (first page, a deep page, filtered by
annotator and by dataset), ``stats()`` and ``conflicts()``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import timedelta
from itertools import count
from pathlib import Path

from sqlalchemy import insert

from db.local_postgres import LocalPostgres
from db.models import Correction, Problem, utcnow
from db.settings import StoreSettings
from db.store import Store, question_hash

EOT = "% eggs left\nleft = 16 - 3 - 4\nmoney = left * 2\nans = money\n"
DATASETS = ("gsm8k", "svamp", "asdiv", "multiarith", "typed")


def write_rate(url: str, synchronous: str, thought: str, n: int, threads: int) -> float:
    """Corrections per second into the empty store at ``url``, ``n`` in all, from ``threads``
    threads."""
    store = Store(url, settings=StoreSettings(sqlite_synchronous=synchronous))
    problem = store.add_problem("Janet's ducks lay 16 eggs...", 18)
    text = EOT if thought == "eot" else "She makes $18. The answer is 18."

    store.add_correction(thought, text, "warm-up", problem.id)  # starts the sandbox workers

    def work(count: int) -> None:
        for _ in range(count):
            store.add_correction(thought, text, "bench", problem.id)

    workers = [threading.Thread(target=work, args=(n // threads,)) for _ in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    store.close()
    return (n // threads) * threads / elapsed


def fill(store: Store, rows: int, seed: int = 0) -> None:
    """``rows`` corrections over ``rows // 2`` problems by 20 annotators: about 30 % pending,
    5 % answering one more than the gold answer (so some problems are in conflict)."""
    rng = random.Random(seed)
    n_problems = max(1, rows // 2)
    start = utcnow() - timedelta(days=30)
    with store.engine.begin() as connection:
        connection.execute(
            insert(Problem),
            [
                {
                    "question": f"Problem {i}?",
                    "question_hash": question_hash(f"Problem {i}?"),
                    "gold_answer": float(i),
                    "source": DATASETS[i % len(DATASETS)],
                    "source_id": f"p-{i}",
                    "created_at": start,
                }
                for i in range(n_problems)
            ],
        )
        statuses = ["pending"] * 3 + ["approved"] * 5 + ["rejected"] * 2
        for offset in range(0, rows, 10_000):
            connection.execute(
                insert(Correction),
                [
                    {
                        "problem_id": (pid := rng.randrange(n_problems)) + 1,
                        "thought": rng.choice(("cot", "pot", "eot")),
                        "corrected_text": f"The answer is {i}.",
                        "after_status": "answered",
                        "after_answer": float(pid + (rng.random() < 0.05)),
                        "unsolved": False,
                        "annotator": f"annotator{rng.randrange(20)}",
                        "status": rng.choice(statuses),
                        "created_at": start + timedelta(seconds=i),
                    }
                    for i in range(offset, min(rows, offset + 10_000))
                ],
            )


def timed(call: Callable[[], object], repeat: int) -> tuple[float, float]:
    """p50 and p95 of ``call`` in milliseconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    cuts = statistics.quantiles(times, n=20)
    return statistics.median(times), cuts[18]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--eot", type=int, default=100)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    backends = args.backends.split(",")

    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp, ExitStack() as stack:
        server = None
        if "postgresql" in backends:
            server = stack.enter_context(LocalPostgres())
        databases = count()

        def new_url(backend: str) -> str:
            name = f"bench{next(databases)}"
            if backend == "sqlite":
                return f"sqlite:///{Path(tmp) / name}.sqlite3"
            assert server is not None
            return server.create_database(name)

        variants = [("sqlite", "FULL"), ("sqlite", "NORMAL")] if "sqlite" in backends else []
        variants += [("postgresql", "")] if server else []
        print("corrections written per second (Store.add_correction)")
        for backend, synchronous in variants:
            for thought, n, threads in (
                ("cot", args.writes, 1),
                ("cot", args.writes, args.threads),
                ("eot", args.eot, 1),
            ):
                rate = write_rate(new_url(backend), synchronous or "FULL", thought, n, threads)
                label = f"{backend} {synchronous}".strip()
                print(f"  {label:18} {thought} x{n:<5} {threads} thread(s): {rate:7.0f}/s")

        for backend in backends:
            query_latency(Store(new_url(backend)), backend, args.rows, args.repeat)


def query_latency(store: Store, backend: str, rows: int, repeat: int) -> None:
    """Fill ``store`` with ``rows`` corrections and print the queue queries' p50 / p95."""
    start = time.perf_counter()
    fill(store, rows)
    if backend == "postgresql":  # what autovacuum does soon after a bulk load on a server
        with store.engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")
    stats = store.stats()
    print(
        f"\n{backend}: filled {stats.corrections:,} corrections "
        f"({stats.by_status['pending']:,} pending) in {time.perf_counter() - start:.1f} s"
    )
    deep = stats.by_status["pending"] // 2
    queries: dict[str, Callable[[], object]] = {
        "corrections(limit=50)": lambda: store.corrections(limit=50),
        f"corrections(offset={deep:,})": lambda: store.corrections(limit=50, offset=deep),
        "corrections(annotator=...)": lambda: store.corrections(annotator="annotator7"),
        "corrections(dataset='svamp')": lambda: store.corrections(dataset="svamp"),
        "stats()": store.stats,
        "conflicts()": store.conflicts,
    }
    print(f"{backend}: query latency at {stats.corrections:,} rows, ms (p50 / p95 of {repeat})")
    for name, call in queries.items():
        p50, p95 = timed(call, repeat if name.startswith("corrections") else max(3, repeat // 10))
        print(f"  {name:40} {p50:8.2f} / {p95:8.2f}")
    store.close()


if __name__ == "__main__":
    main()
