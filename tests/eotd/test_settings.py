"""The engine's settings, read from the environment in one place."""

from __future__ import annotations

from pathlib import Path

import pytest

from eotd.model_loading import cache_dir, requested_threads
from eotd.settings import EngineSettings


def test_defaults_and_every_variable():
    default = EngineSettings.from_env({})
    assert (default.engine, default.threads, default.quantize) == ("auto", 0, None)
    assert default.cache_dir == Path.home() / ".cache" / "eotd"
    env = {"EOTD_ENGINE": "ct2", "EOTD_THREADS": "3", "EOTD_QUANTIZE": "int8",
           "EOTD_CACHE_DIR": "/data/cache"}  # fmt: skip
    settings = EngineSettings.from_env(env)
    assert (settings.engine, settings.threads, settings.quantize) == ("ct2", 3, "int8")
    assert settings.cache_dir == Path("/data/cache")
    with pytest.raises(ValueError, match="EOTD_THREADS='many' is not a number"):
        EngineSettings.from_env({"EOTD_THREADS": "many"})


def test_functions_given_no_value_read_the_settings(monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.setenv("EOTD_THREADS", "2")
    monkeypatch.setenv("EOTD_CACHE_DIR", str(tmp_path))
    assert (requested_threads(None), requested_threads(1)) == (2, 1)
    assert cache_dir() == tmp_path
