"""Apply a function to many items in worker processes with `datasets.Dataset.map`, in order.

Items and results cross to the workers as JSON text in one Arrow column. Arrow gives a column one
type (an integer answer among float ones would come back a float, a key one item lacks would come
back None); JSON keeps each value as it was, so the results are the same whatever `num_proc` is.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import datasets


def _apply(row: dict[str, str], fn: Callable[[Any], Any]) -> dict[str, str]:
    return {"result": json.dumps(fn(json.loads(row["item"])))}


def map_items(
    fn: Callable[[Any], Any], items: Sequence[Any], num_proc: int = 1, desc: str | None = None
) -> list[Any]:
    """``[fn(item) for item in items]`` over `num_proc` processes (1: in this process).

    Items and results must be JSON values; `fn` must pickle (a module-level function or a
    `functools.partial` of one).
    """
    if num_proc < 1:
        raise ValueError(f"num_proc must be at least 1, got {num_proc}")
    if not items:
        return []
    dataset = datasets.Dataset.from_dict({"item": [json.dumps(item) for item in items]})
    num_proc = min(num_proc, len(items))
    mapped = dataset.map(
        _apply,
        fn_kwargs={"fn": fn},
        remove_columns=["item"],
        num_proc=num_proc if num_proc > 1 else None,  # datasets starts a pool even for 1
        desc=desc,
    )
    return [json.loads(result) for result in mapped["result"]]
