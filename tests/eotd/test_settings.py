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


def test_the_environment_is_read_at_each_call_even_once_os_environ_is_replaced(
    monkeypatch: pytest.MonkeyPatch, tmp_path
):
    from functools import partial

    from db.settings import StoreSettings
    from training.parallel import map_items

    # `datasets.Dataset.map(num_proc=2)` puts a copy of os.environ in its place when it is done.
    map_items(partial(dict, seen=True), [{"n": 1}, {"n": 2}], num_proc=2)
    monkeypatch.setenv("EOTD_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("EOTD_DB_URL", "sqlite:////data/studio.sqlite3")
    assert cache_dir() == tmp_path
    assert StoreSettings.from_env().url == "sqlite:////data/studio.sqlite3"
