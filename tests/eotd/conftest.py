"""The eotd tests' tiny student, fine-tuned once per test session (seconds on a CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eotd import sandbox
from tests.eotd.support import ROWS
from training.tiny_model import make_tiny_student


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model fully fine-tuned until it writes ``ROWS``' targets."""
    return make_tiny_student(tmp_path_factory.mktemp("student"), ROWS)


@pytest.fixture(scope="module")
def warm_sandbox() -> None:
    """The sandbox's workers started before a module's tests time anything."""
    sandbox.warm_up()
