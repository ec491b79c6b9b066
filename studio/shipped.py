"""The student shipped in ``models/``: the store's first model version, with its evaluation.

On a fresh store the app registers and promotes it, so the Model tab shows what is served and
the model card's accuracy (``models/eval/``) instead of "not registered".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from db import Store
from db.models import ModelVersion
from eotd.model_loading import DEFAULT_BASE, default_adapter

NAME = "shipped student (models/)"
# The evaluations behind the model card's table, first one wins per set: the GPU run's GSM8K and
# SVAMP (rescored with today's rules), then MultiArith on the default CPU engine (CTranslate2
# float32, which writes what PyTorch float32 writes).
METRICS = ("eval/student/metrics.json", "eval/engines/ct2_float32/multiarith/metrics.json")
TRAINING = "eval/training/metrics.json"


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def shipped_metrics(folder: Path) -> dict[str, Any]:
    """``{"datasets": {set: scores}, "sources": {set: file}}`` from the model card's files."""
    datasets: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name in METRICS:
        for key, block in (_read(folder / name).get("datasets") or {}).items():
            if key not in datasets and isinstance(block, dict):
                datasets[key], sources[key] = block, f"models/{name}"
    return {"datasets": datasets, "sources": sources}


def register_shipped(store: Store) -> ModelVersion | None:
    """Register and promote the shipped adapter when the store has no model version yet;
    returns it, or None when there is nothing to do (versions exist, or none ships)."""
    folder = default_adapter()
    if folder is None or store.model_versions():
        return None
    try:
        version = store.register_model_version(
            NAME, DEFAULT_BASE, str(folder), _read(folder / TRAINING), shipped_metrics(folder)
        )
    except ValueError:  # another process registered it first
        return None
    return store.promote(version.id)
