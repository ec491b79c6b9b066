"""What the tiny student of the eotd tests is trained to write (once per session: conftest.py)."""

from __future__ import annotations

APPLES = "Tom has 3 apples and buys 4 more. How many apples does he have?"
EGGS = "A box holds 6 eggs. How many eggs are in 5 boxes?"
ROWS = [
    {"question": APPLES, "thought": "cot", "target": "3 + 4 = 7. The answer is 7."},
    {"question": APPLES, "thought": "pot", "target": "apples = 3\nbought = 4\nans = apples + 4"},
    {"question": APPLES, "thought": "eot", "target": "total = 3 + 4\nans = total"},
    {"question": EGGS, "thought": "cot", "target": "6 * 5 = 30. The answer is 30."},
    {"question": EGGS, "thought": "pot", "target": "boxes = 5\nans = 6 * boxes / 0"},
    {"question": EGGS, "thought": "eot", "target": "eggs = 6 * 5\nans = eggs"},
]
