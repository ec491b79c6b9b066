"""The engine's settings: every ``EOTD_*`` variable the reasoning engine reads, in one place.

:meth:`EngineSettings.from_env` is the only reader in ``eotd/``; functions given no explicit value
(``threads=None`` and the like) fall back to it, so that an entry point can set them once.

| variable | field | default |
|---|---|---|
| ``EOTD_ENGINE`` | ``engine``: torch, ct2 or auto | auto (ct2 on a CPU) |
| ``EOTD_THREADS`` | ``threads`` | 0: the engine's default |
| ``EOTD_QUANTIZE`` | ``quantize``: int8 for PyTorch inference on a CPU | none |
| ``EOTD_CACHE_DIR`` | ``cache_dir``: converted models | ``~/.cache/eotd`` |
| ``EOTD_SANDBOX_WORKERS`` | ``sandbox_workers`` | 0: min(2, CPUs) |
| ``EOTD_SANDBOX_WAIT`` | ``sandbox_wait``: seconds a call waits for a free worker | 10 |
| ``EOTD_SANDBOX_ALLOW_NO_SECCOMP`` | ``sandbox_allow_no_seccomp`` | off |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

SANDBOX_WAIT = 10.0
"""Seconds a program waits for a free sandbox worker before it is answered ``busy``."""
TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class EngineSettings:
    """How the engine runs: which one, on how many threads, where it caches, its sandbox."""

    engine: str = "auto"
    threads: int = 0
    quantize: str | None = None
    cache_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "eotd")
    sandbox_workers: int = 0
    sandbox_wait: float = SANDBOX_WAIT
    sandbox_allow_no_seccomp: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EngineSettings:
        """The settings the environment gives; a malformed number is an error naming it."""
        env = os.environ if env is None else env  # read now: `datasets` can replace os.environ

        def number(name: str, default: float, convert: type) -> float:
            raw = env.get(name, "")
            try:
                return convert(raw) if raw.strip() else default
            except ValueError:
                raise ValueError(f"{name}={raw!r} is not a number") from None

        cache = env.get("EOTD_CACHE_DIR")
        return cls(
            engine=env.get("EOTD_ENGINE") or "auto",
            threads=int(number("EOTD_THREADS", 0, int)),
            quantize=env.get("EOTD_QUANTIZE") or None,
            cache_dir=Path(cache) if cache else Path.home() / ".cache" / "eotd",
            sandbox_workers=int(number("EOTD_SANDBOX_WORKERS", 0, int)),
            sandbox_wait=number("EOTD_SANDBOX_WAIT", SANDBOX_WAIT, float),
            sandbox_allow_no_seccomp=env.get("EOTD_SANDBOX_ALLOW_NO_SECCOMP", "").strip().lower()
            in TRUE,
        )
