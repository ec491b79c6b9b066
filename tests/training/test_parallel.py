"""map_items: the same results, in order, with their own types, whatever the number of processes."""

import os
from functools import partial

import pytest

from training.parallel import map_items


def describe(item: dict, scale: int) -> dict:
    return {"value": item["n"] * scale, "answer": item.get("answer"), "pid": os.getpid()}


ITEMS = [{"n": i, "answer": 72 if i % 3 else 0.5} for i in range(40)] + [{"n": 40}]


def test_two_processes_give_the_serial_results_in_order_with_their_types():
    serial = map_items(partial(describe, scale=3), ITEMS, num_proc=1)
    parallel = map_items(partial(describe, scale=3), ITEMS, num_proc=2)
    assert [r["value"] for r in parallel] == [3 * i for i in range(41)]
    strip = [{k: v for k, v in r.items() if k != "pid"} for r in parallel]
    assert strip == [{k: v for k, v in r.items() if k != "pid"} for r in serial]
    assert [type(r["answer"]) for r in parallel[:3]] == [float, int, int]  # 72 stays an int
    assert parallel[-1]["answer"] is None
    workers = {r["pid"] for r in parallel}
    assert {r["pid"] for r in serial} == {os.getpid()}
    assert len(workers) == 2 and os.getpid() not in workers


def test_nothing_to_do_and_bad_process_counts():
    assert map_items(partial(describe, scale=1), [], num_proc=2) == []
    assert map_items(partial(describe, scale=1), [{"n": 1}], num_proc=4)[0]["value"] == 1
    with pytest.raises(ValueError, match="num_proc must be at least 1"):
        map_items(partial(describe, scale=1), ITEMS, num_proc=0)
