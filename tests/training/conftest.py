"""The training tests' tiny student, fine-tuned once per test session (seconds on a CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.support import PROBLEMS
from training.tiny_model import make_tiny_student


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model fully fine-tuned until it writes ``PROBLEMS``' three thoughts."""
    rows = []
    for _, q, answer, pot, eot in PROBLEMS:
        rows += [
            {"question": q, "thought": "cot", "target": f"The answer is {answer}."},
            {"question": q, "thought": "pot", "target": pot},
            {"question": q, "thought": "eot", "target": eot},
        ]
    return make_tiny_student(tmp_path_factory.mktemp("student"), rows)
