"""Load check: many gradio_client clients solving at once against a launched app.

    python -m benchmarks.bench_app_load [--clients 20] [--model tiny|default|PATH]
        [--max_new_tokens 64] [--max_batch 16] [--backends sqlite,postgresql]

Launches the app on 127.0.0.1 over a fresh store on each backend in turn (a SQLite file; a
throwaway PostgreSQL server, ``db.local_postgres``), with one student (a tiny random one by
default, which writes junk fast; ``--model default`` serves the real SmolLM2 student), starts
every client at once, each solving a different evaluation question through the ``solve``
endpoint, and checks that all are answered (a final state with three recorded thoughts and a
vote) and none is lost (one problem and three generations each in the store). Prints
p50/p90/max latency per backend.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from gradio_client import Client

from db import Store
from db.local_postgres import LocalPostgres
from studio.examples import EvalSets
from studio.handlers import Studio
from studio.ui import build_app, launch_local
from training.config import load_config


@dataclass
class LoadConfig:
    """Concurrent solve clients against the app."""

    clients: int = 20
    model: str = "tiny"  # "tiny" (random, built here), "default" (SmolLM2 student) or a folder
    max_new_tokens: int = 64
    max_batch: int = 16  # concurrent solves batched into one generate (1: one at a time)
    backends: list[str] = field(default_factory=lambda: ["sqlite", "postgresql"])


def _student(cfg: LoadConfig, folder: Path):
    from eotd.student import Student

    if cfg.model == "tiny":
        from training.tiny_model import SAMPLE_TEXTS, make_tiny_model

        base, adapter = str(make_tiny_model(folder / "tiny", SAMPLE_TEXTS * 10)), None
    else:
        base, adapter = cfg.model, "default"
    return Student.from_pretrained(base, adapter, engine="torch", max_new_tokens=cfg.max_new_tokens)


def _solve(url: str, question: str) -> tuple[float, dict]:
    client = Client(url, verbose=False)
    start = time.perf_counter()
    final = client.predict(question, api_name="/solve")
    return time.perf_counter() - start, final


def run(cfg: LoadConfig, store_url: str, student) -> dict:
    """Launch over the empty store at ``store_url``, load and check; returns the figures."""
    eval_sets = EvalSets()
    store = Store(store_url)
    studio = Studio(store, student, eval_sets=eval_sets, max_batch=cfg.max_batch)
    demo = build_app(studio)
    url = launch_local(demo, studio)
    questions = [p.question for p in eval_sets.sample("svamp", cfg.clients, seed=1)]
    try:
        _solve(url, "Warm up: 1 apple and 1 pear, how many fruits?")
        started = time.perf_counter()
        with ThreadPoolExecutor(cfg.clients) as pool:
            results = list(pool.map(lambda q: _solve(url, q), questions))
        wall = time.perf_counter() - started
    finally:
        demo.close()
    latencies = sorted(t for t, _ in results)
    answered = [f for _, f in results if f["done"] and len(f["thoughts"]) == 3 and f["vote"]]
    problems = {f["problem_id"] for f in answered}
    stored = store.stats()
    return {
        "clients": cfg.clients,
        "answered": len(answered),
        "distinct_problems": len(problems),
        "generations_stored": stored.generations,
        "expected_generations": 3 * (cfg.clients + 1),
        "wall_s": wall,
        "p50_s": statistics.median(latencies),
        "p90_s": latencies[max(0, round(0.9 * len(latencies)) - 1)],
        "max_s": latencies[-1],
        "batches": studio.batcher.batch_sizes[1:],  # after the warm-up solve
    }


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(LoadConfig, argv)
    folder = Path(tempfile.mkdtemp(prefix="eotd-load-"))
    student = _student(cfg, folder)
    print(
        f"{cfg.clients} clients, model {cfg.model}, max_new_tokens {cfg.max_new_tokens}, "
        f"max batch {cfg.max_batch}"
    )
    with ExitStack() as stack:
        for backend in cfg.backends:
            if backend == "sqlite":
                url = f"sqlite:///{folder / 'eotd.sqlite3'}"
            else:
                url = stack.enter_context(LocalPostgres()).create_database("eotd")
            r = run(cfg, url, student)
            print(
                f"{backend}: answered {r['answered']}/{r['clients']}, distinct problems "
                f"{r['distinct_problems']}, generations stored "
                f"{r['generations_stored']}/{r['expected_generations']}; latency p50 "
                f"{r['p50_s']:.2f} s, p90 {r['p90_s']:.2f} s, max {r['max_s']:.2f} s; all done "
                f"in {r['wall_s']:.2f} s ({r['clients'] / r['wall_s']:.2f} solves/s)"
            )
            print(f"{backend}: questions per model run: {r['batches']}")
            if r["answered"] < r["clients"] or r["generations_stored"] < r["expected_generations"]:
                print(f"LOST REQUESTS on {backend}", file=sys.stderr)
                raise SystemExit(1)


if __name__ == "__main__":
    main()
