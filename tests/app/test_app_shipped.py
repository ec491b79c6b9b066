"""A fresh store registers the shipped student as its first, promoted model version."""

from __future__ import annotations

from pathlib import Path

from db import Store
from eotd.model_loading import SHIPPED_ADAPTER_DIR
from studio.handlers import accuracy_rows
from studio.shipped import NAME, register_shipped


def test_a_fresh_store_serves_the_shipped_student_with_its_evaluation(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'eotd.sqlite3'}")
    version = register_shipped(store)
    assert version is not None and version.promoted and version.name == NAME
    assert store.promoted_model_version().id == version.id
    assert version.adapter_path == str(SHIPPED_ADAPTER_DIR)
    rows = {r["set"]: r for r in accuracy_rows(version.metrics)}
    assert set(rows) == {"gsm8k", "svamp", "multiarith"}
    assert rows["gsm8k"]["majority"] == 12.05  # the model card's figure (159 of 1,319)
    assert rows["gsm8k"]["verified"] > rows["gsm8k"]["majority"]
    assert version.metrics["sources"]["multiarith"].startswith("models/eval/engines/ct2_float32")
    assert rows["multiarith"]["majority"] == 45.33  # the model card's figure (272 of 600)
    assert version.training_summary["method"] == "lora"
    assert register_shipped(store) is None  # once only
    assert len(store.model_versions()) == 1
    actions = [entry.action for entry in store.audit_log()]
    assert actions.count("model.register") == 1 and actions.count("model.promote") == 1


def test_a_store_with_versions_is_left_alone(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'eotd.sqlite3'}")
    store.register_model_version("mine", "default", None)
    assert register_shipped(store) is None
    assert [v.name for v in store.model_versions()] == ["mine"]
    assert store.promoted_model_version() is None
