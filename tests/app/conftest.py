"""Fixtures for the app tests: a tiny random student (junk, but fast), a real SQLite store, and
the app launched on 127.0.0.1 at a free port.

``EOTD_APP_TEST_MODEL=default`` (or a model folder) serves the real student in the launched app
instead, for the documentation screenshots (``EOTD_SCREENSHOTS``, see test_app_browser.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from db import Store
from db.access import Actor, Role
from eotd.model_loading import load_model
from eotd.student import GenerationSettings, Student
from eotd.torch_engine import TorchEngine
from studio.examples import EvalSets
from studio.handlers import Studio
from studio.ui import build_app, launch_local
from training.tiny_model import SAMPLE_TEXTS, make_tiny_model

SVAMP_1 = (
    "Each pack of dvds costs 76 dollars. If there is a discount of 25 dollars on each pack How "
    "much do you have to pay to buy each pack?"
)  # svamp-chal-1, gold 51
SVAMP_1_EOT = "price = 76\ndiscount = 25\npay = price - discount\nans = pay"
# Acting users of in-process handler calls (the app resolves them from the session).
VISITOR = Actor("anonymous", Role.VISITOR, client="127.0.0.1")
ANN = Actor("ann", Role.ANNOTATOR)
BOB = Actor("bob", Role.ANNOTATOR)
REV = Actor("rev", Role.REVIEWER)
ADMIN = Actor("root", Role.ADMIN)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-model"), SAMPLE_TEXTS * 10)


@pytest.fixture(scope="session")
def tiny_student(tiny_model_dir: Path) -> Student:
    return Student(TorchEngine(load_model(str(tiny_model_dir), None)), GenerationSettings(12))


@pytest.fixture(scope="session")
def eval_sets() -> EvalSets:
    return EvalSets()


def make_studio(folder: Path, student: Student | None, eval_sets: EvalSets, **kw) -> Studio:
    """A studio over a fresh SQLite file (local mode unless ``access`` says otherwise)."""
    store = Store(f"sqlite:///{folder / 'eotd.sqlite3'}")
    return Studio(store, student, eval_sets=eval_sets, export_dir=folder / "exports", **kw)


@pytest.fixture
def studio(tmp_path: Path, tiny_student: Student, eval_sets: EvalSets) -> Iterator[Studio]:
    s = make_studio(tmp_path, tiny_student, eval_sets)
    yield s
    s.store.close()


@dataclass
class Served:
    studio: Studio
    url: str


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, tiny_student: Student, eval_sets: EvalSets
) -> Iterator[Served]:
    """The app over a fresh store, launched in this process."""
    real = os.environ.get("EOTD_APP_TEST_MODEL")
    student = Student.from_pretrained(real, max_new_tokens=96) if real else tiny_student
    studio = make_studio(tmp_path_factory.mktemp("served"), student, eval_sets)
    demo = build_app(studio)
    yield Served(studio, launch_local(demo, studio))
    demo.close()
    studio.store.close()
