"""Which engine writes the thoughts, in what precision, where: resolved once, then loaded.

An entry point (the app, ``training.evaluate``, ``training.retrain``, the benchmarks) calls
:func:`resolve` with its settings and gets an :class:`~eotd.generation.EngineSpec`, which
:func:`load` turns into an engine for :class:`eotd.student.Student`. Nothing below an entry point
chooses an engine (the app alone reads ``$EOTD_ENGINE``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig

from eotd.generation import Engine, EngineSpec
from eotd.model_loading import (
    available_cores,
    cpu_features,
    load_model,
    requested_threads,
    resolve_device,
    resolve_dtype,
    resolve_sources,
)

ENGINES = ("torch", "ct2")
# The CTranslate2 weight type of "auto" precision: the fastest that keeps the answers of PyTorch
# float32 (models/README.md, "Choosing the CPU engine", measures every candidate: float32 writes
# its text exactly; int8 is faster but changes most answers, differently on different CPUs).
CT2_PRECISION = "float32"


def _ct2_installed() -> bool:
    return importlib.util.find_spec("ctranslate2") is not None


@dataclass
class StudentChoice:
    """The student an entry point asks for and how it should run: the section of every script's
    config that names a model (``training.config``). :meth:`resolve` makes it an ``EngineSpec``."""

    model: str = "default"  # "default" (SmolLM2-135M-Instruct), a folder, a .gguf or a hub id
    adapter: str = "default"  # "default" (models/ for the default base), "none", or a folder
    engine: str = "auto"  # "torch", "ct2" (CTranslate2: CPU, faster) or "auto" (ct2 on a CPU)
    # "auto" (ct2: CT2_PRECISION; torch: bf16 on a GPU that has it, else float32), a torch dtype
    # (fp32, bf16) or a ct2 weight type (float32, int8, ...)
    precision: str = "auto"
    device: str = "auto"
    threads: int = 0  # CPU threads; 0: $EOTD_THREADS or the cores this process may use

    def resolve(self, adapter: str | None = None, threads: int | None = None) -> EngineSpec:
        """The engine this asks for (``adapter``/``threads``: the entry point's own, if it
        decided them)."""
        return resolve(
            self.engine,
            self.precision,
            self.device,
            self.model,
            self.adapter if adapter is None else adapter,
            self.threads if threads is None else threads,
        )


def resolve(
    engine: str = "auto",
    precision: str = "auto",
    device: str = "auto",
    base: str | None = None,
    adapter: str | Path | None = "default",
    threads: int = 0,
) -> EngineSpec:
    """The one resolution of an entry point's model settings.

    ``engine``: "torch" (transformers' ``generate``), "ct2" (CTranslate2, CPU only) or "auto"
    (ct2 for a causal model on a CPU when CTranslate2 is installed, else torch). ``precision``:
    "auto" (ct2: ``CT2_PRECISION``; torch: bf16 on an accelerator that has it, else float32), a
    torch dtype (fp32, bf16, float32, ...) or a CTranslate2 weight type (int8, float32, ...).
    ``base``/``adapter`` as ``eotd.model_loading.load_model`` reads them ("default", "none", a
    folder); ``threads``: 0 for ``$EOTD_THREADS``, else the cores this process may use."""
    source, adapter_path = resolve_sources(base, None if adapter is None else str(adapter))
    where = resolve_device(device)
    on_cpu = where.type == "cpu"
    if engine == "auto":
        fits = on_cpu and _ct2_installed()
        engine = (
            "ct2" if fits and not AutoConfig.from_pretrained(source).is_encoder_decoder else "torch"
        )
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; use one of {ENGINES} or auto")
    if engine == "ct2":
        if not on_cpu:
            raise ValueError("the ct2 engine runs on the CPU; use engine='torch' on a GPU")
        precision = CT2_PRECISION if precision == "auto" else precision
        from eotd.ct2_engine import check_quantization

        check_quantization(precision)
        default_threads = available_cores()
    else:
        dtype = resolve_dtype(precision, where)
        if not dtype.is_floating_point:
            raise ValueError(f"the torch engine computes in a float type, not {dtype}")
        precision = str(dtype).removeprefix("torch.")
        default_threads = torch.get_num_threads()
    return EngineSpec(
        engine, precision, where.type, source, adapter_path,
        (requested_threads(threads) or default_threads) if on_cpu else 0,
        cpu_features() if on_cpu else "",
    )  # fmt: skip


def load(spec: EngineSpec) -> Engine:
    """The engine ``spec`` describes (the ct2 engine converts the model on first use)."""
    adapter = spec.adapter or "none"
    if spec.engine == "ct2":
        from eotd.ct2_engine import load_ct2

        return load_ct2(spec.base, adapter, quantization=spec.precision, threads=spec.threads)
    from eotd.torch_engine import TorchEngine

    loaded = load_model(
        spec.base, adapter, device=spec.device, dtype=spec.precision, threads=spec.threads
    )
    return TorchEngine(loaded)
