"""What the training tests' tiny student is trained to solve (once per session: conftest.py)."""

from __future__ import annotations

# id, question, answer, PoT target, EoT target
PROBLEMS = [
    ("t-0", "Tom has 3 apples and buys 4 more. How many?", 7, "ans = 3 + 4", "x = 3 + 4\nans = x"),
    ("t-1", "A box holds 6 eggs. How many in 5 boxes?", 30, "ans = 6 * 5", "e = 6 * 5\nans = e"),
]
