"""Flood check: annotators saving endless programs must not starve everyone else's live re-solve.

    python -m benchmarks.bench_flood [--clients 20] [--checks 15] [--seconds 60]

Launches the app on 127.0.0.1 with accounts and the default rate limits (no model is loaded:
saves and checks need only the engine). ``clients`` annotators each save a never-ending program,
kept unsolved so that each runs to its timeout, over and over through ``save_correction``, while
a visitor's account times ``check_equations`` on a small system. Prints the check's p50/p90
seconds against the same checks on the idle app, and how many saves ran.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from gradio_client import Client

from db import Store
from db import users as accounts
from studio.handlers import Studio
from studio.identity import Access, Mode
from studio.ui import build_app, launch_local
from training.config import load_config

EQUATIONS = "apples = 3\npears = apples + 4\nans = apples + pears"
ENDLESS = "n = 0\nwhile True:\n    n += 1\nans = n"
PASSWORD = "flood-password"


@dataclass
class FloodConfig:
    """Endless-program saves from many annotators against one client's live checks."""

    clients: int = 20
    checks: int = 15  # timed check_equations calls, idle and under the flood
    seconds: float = 60.0  # longest the flood runs


def _checks(url: str, n: int) -> list[float]:
    client = Client(url, auth=("checker", PASSWORD), verbose=False)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        assert client.predict(EQUATIONS, api_name="/check_equations")["answer"] == 10
        times.append(time.perf_counter() - start)
        time.sleep(0.2)
    return times


def _flood(url: str, name: str, problem_id: int, stop: threading.Event) -> None:
    client = Client(url, auth=(name, PASSWORD), verbose=False)
    while not stop.is_set():
        try:
            client.predict(problem_id, "pot", ENDLESS, None, True, api_name="/save_correction")
        except Exception:  # rate limited, or the server closed: what a flood meets
            time.sleep(0.5)


def run(cfg: FloodConfig) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="eotd-flood-"))
    store = Store(f"sqlite:///{folder / 'eotd.sqlite3'}")
    names = [f"ann{i}" for i in range(cfg.clients)]
    for name in names:
        accounts.add_user(store, name, "annotator", PASSWORD)
    accounts.add_user(store, "checker", "visitor", PASSWORD)
    problem_id = store.add_problem("Tom has 3 apples and 4 more pears than apples.", 10).id
    studio = Studio(store, access=Access(Mode.ACCOUNTS), export_dir=folder)
    demo = build_app(studio)
    url = launch_local(demo, studio)
    try:
        idle = _checks(url, cfg.checks)
        stop = threading.Event()
        pool = ThreadPoolExecutor(cfg.clients)
        for name in names:
            pool.submit(_flood, url, name, problem_id, stop)
        time.sleep(3)  # let the flood fill the queue
        busy = _checks(url, cfg.checks)
        stop.set()
    finally:
        demo.close()  # the flooders' waiting saves end with the server
    pool.shutdown(wait=True, cancel_futures=True)
    saves = store.stats().corrections
    store.close()
    return {
        "clients": cfg.clients,
        "idle_p50_s": statistics.median(idle),
        "flood_p50_s": statistics.median(busy),
        "flood_p90_s": statistics.quantiles(busy, n=10)[-1],
        "endless_saves_stored": saves,  # each ran to its timeout, kept unsolved
    }


def main(argv: list[str] | None = None) -> None:
    figures = run(load_config(FloodConfig, argv))
    print(
        f"{figures['clients']} clients saving endless programs: check_equations "
        f"p50 {figures['flood_p50_s']:.2f} s, p90 {figures['flood_p90_s']:.2f} s "
        f"(idle p50 {figures['idle_p50_s']:.2f} s); {figures['endless_saves_stored']} endless "
        "saves ran to their timeout and were kept unsolved"
    )


if __name__ == "__main__":
    main()
