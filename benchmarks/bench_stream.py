"""How soon a visitor sees the student write, and how soon the vote comes, through the app's path.

    python -m benchmarks.bench_stream [--n 15] [--engine auto] [--precision auto]

Serves the student as the app does (``Studio.solve``: the batcher, the streamed states, a SQLite
store in a temp folder), warms it up on one question, then asks the first ``n`` GSM8K test
questions one at a time and prints p50/p90 seconds to the first visible text (a state with some
thought's text) and to the vote. Threads: ``$EOTD_THREADS``, else every core this process may use.
Target: first text under 1 s p50 on 2 cores.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.bench_student import p90
from db import Store
from db.access import SYSTEM
from studio.handlers import Studio
from training.config import load_config
from training.datasets import load_problems


@dataclass
class StreamBenchConfig:
    """Time the app's streamed solve: first visible text and the vote."""

    model: str = "default"
    adapter: str = "default"
    engine: str = "auto"  # as the app: ct2 on a CPU
    precision: str = "auto"
    n: int = 15
    max_new_tokens: int = 256
    json_out: str = ""


def _timed_solve(studio: Studio, question: str) -> tuple[float, float]:
    """Seconds to the first state with written text, and to the vote."""
    started = time.perf_counter()
    first = None
    for state in studio.solve(SYSTEM, question):
        if first is None and any(v.text for v in state.thoughts.values()):
            first = time.perf_counter() - started
    vote = time.perf_counter() - started
    return (vote if first is None else first), vote


def bench(cfg: StreamBenchConfig) -> dict:
    questions = [p["question"] for p in load_problems("gsm8k", "test").select(range(cfg.n + 1))]
    with tempfile.TemporaryDirectory() as folder:
        store = Store(f"sqlite:///{Path(folder) / 'bench.sqlite3'}")
        studio = Studio(
            store, base=cfg.model, adapter=cfg.adapter,
            engine=cfg.engine, precision=cfg.precision, max_new_tokens=cfg.max_new_tokens,
        )  # fmt: skip
        started = time.perf_counter()
        _timed_solve(studio, questions[0])  # loads the model (and converts it on first use)
        warmup = time.perf_counter() - started
        firsts, votes = zip(*(_timed_solve(studio, q) for q in questions[1:]), strict=True)
        engine = str(studio.student().engine.spec)
        store.close()
    result = {
        "engine": engine,
        "n": len(votes),
        "first_text_p50_s": round(statistics.median(firsts), 3),
        "first_text_p90_s": round(p90(list(firsts)), 3),
        "vote_p50_s": round(statistics.median(votes), 3),
        "vote_p90_s": round(p90(list(votes)), 3),
        "warmup_s": round(warmup, 2),
    }
    print(json.dumps(result), flush=True)
    if cfg.json_out:
        Path(cfg.json_out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def main(argv: list[str] | None = None) -> None:
    bench(load_config(StreamBenchConfig, argv))


if __name__ == "__main__":
    main()
