"""Shared test setup: keep every test's files and caches inside pytest's tmp dirs."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Point the store's default data dir at a temp folder so no test touches ./var."""
    monkeypatch.setenv("EOTD_DATA_DIR", str(tmp_path_factory.mktemp("eotd-data")))
