"""Fixtures for the app tests: a tiny random student (junk, but fast), a real SQLite store, and
the app launched on 127.0.0.1 at a free port.

``EOTD_APP_TEST_MODEL=default`` (or a model folder) serves the real student in the launched app
instead, for the documentation screenshots (``EOTD_SCREENSHOTS``, see test_app_browser.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from eotd.model_loading import load_model
from eotd.student import GenerationSettings, Student
from eotd.torch_engine import TorchEngine
from studio.examples import EvalSets
from studio.handlers import Studio
from studio.ui import build_app, launch_local
from tests.app.support import Served, make_studio
from training.tiny_model import SAMPLE_TEXTS, make_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-model"), SAMPLE_TEXTS * 10)


@pytest.fixture(scope="session")
def tiny_student(tiny_model_dir: Path) -> Student:
    return Student(TorchEngine(load_model(str(tiny_model_dir), None)), GenerationSettings(12))


@pytest.fixture(scope="session")
def eval_sets() -> EvalSets:
    return EvalSets()


@pytest.fixture
def studio(tmp_path: Path, tiny_student: Student, eval_sets: EvalSets) -> Iterator[Studio]:
    s = make_studio(tmp_path, tiny_student, eval_sets)
    yield s
    s.store.close()


@pytest.fixture(scope="module")
def store_url() -> str | None:
    """The store of the module's launched app; None: a fresh SQLite file."""
    return None


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_student: Student,
    eval_sets: EvalSets,
    store_url: str | None,
) -> Iterator[Served]:
    """The app over a fresh store, launched in this process."""
    real = os.environ.get("EOTD_APP_TEST_MODEL")
    student = Student.from_pretrained(real, max_new_tokens=96) if real else tiny_student
    studio = make_studio(tmp_path_factory.mktemp("served"), student, eval_sets, store_url)
    demo = build_app(studio)
    yield Served(studio, launch_local(demo, studio))
    demo.close()
    studio.store.close()
