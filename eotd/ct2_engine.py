"""A fast CPU engine for the student: the merged model converted to CTranslate2 (int8 weights).

On a 2-core CPU, PyTorch's eager ``generate`` spends most of a decoding step reading fp32 weights
and dispatching small ops; CTranslate2 decodes the same model from int8 weights in C++, several
times faster (``benchmarks/bench_student.py``). The conversion (base + merged adapter) takes about
a minute once and is cached next to the plain GGUF copy, keyed by the source files, so a new
adapter gets a new copy. Outputs are not bit-identical to PyTorch's (int8 weights); the model
card reports the accuracy of both on the same problems.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from eotd.model_loading import (
    LoadedModel,
    cache_dir,
    end_token_ids,
    load_model,
    prepare_tokenizer,
    resolve_sources,
)

if TYPE_CHECKING:
    from eotd.student import GenerationSettings

QUANTIZATIONS = ("int8", "int8_float32", "int16", "float32")


@dataclass
class CT2Model:
    """A student converted to CTranslate2, with the tokenizer and where it came from."""

    generator: Any  # ctranslate2.Generator
    tokenizer: PreTrainedTokenizerBase
    base: str
    adapter: str | None
    folder: Path  # the converted model
    dtype: str  # the quantization of its weights

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def generate_rows(
        self,
        prompts: Sequence[str],
        settings: GenerationSettings,
        on_finish: Callable[[int, list[int], bool], None],
    ) -> None:
        """Write a continuation of each prompt (``settings.num_samples`` rows each, prompt-major);
        ``on_finish(row, tokens, ended)`` as soon as a row ends (``ended``: by an end token or a
        stop string, not by running into ``max_new_tokens``)."""
        k = settings.num_samples
        ids = self.tokenizer(list(prompts))["input_ids"]
        starts = [self.tokenizer.convert_ids_to_tokens(row) for row in ids for _ in range(k)]
        ends = set(end_token_ids(self.tokenizer))
        rows = _Rows(self.tokenizer, settings.stop_strings, ends, on_finish, len(starts))
        sampling = (
            {"sampling_topk": 0, "sampling_topp": settings.top_p,
             "sampling_temperature": settings.temperature}
            if settings.do_sample else {"sampling_topk": 1}
        )  # fmt: skip
        self.generator.generate_batch(
            starts,
            max_length=settings.max_new_tokens,
            end_token=sorted(ends),
            include_prompt_in_result=False,
            callback=rows.step,
            **sampling,
        )
        rows.finish_rest()


class _Rows:
    """Collects each row's tokens from CTranslate2's per-token callback and reports ends."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        stop_strings: Sequence[str],
        end_ids: set[int],
        on_finish: Callable[[int, list[int], bool], None],
        n: int,
    ) -> None:
        self.tokenizer = tokenizer
        self.stop_strings = tuple(stop_strings)
        self.end_ids = end_ids
        self.on_finish = on_finish
        self.tokens: list[list[int]] = [[] for _ in range(n)]
        self.done = [False] * n
        # Enough tokens to hold the longest stop string (a token is at least one character).
        self.window = max((len(s) for s in self.stop_strings), default=0) + 1

    def step(self, result: Any) -> bool:
        """Take one generated token; True tells CTranslate2 to stop this row."""
        row = result.batch_id
        if self.done[row]:
            return True
        if result.token_id in self.end_ids:
            return self._finish(row, True)
        self.tokens[row].append(result.token_id)
        if self.stop_strings:
            tail = self.tokenizer.decode(self.tokens[row][-self.window :])
            if any(stop in tail for stop in self.stop_strings):
                return self._finish(row, True)
        if result.is_last:  # ran into max_new_tokens
            return self._finish(row, False)
        return False

    def _finish(self, row: int, ended: bool) -> bool:
        self.done[row] = True
        self.on_finish(row, self.tokens[row], ended)
        return True

    def finish_rest(self) -> None:
        for row, done in enumerate(self.done):
            if not done:
                self._finish(row, False)


def _fingerprint(source: str | Path | None) -> str:
    """Identify a model source: its files' names, sizes and times for a folder, else the name."""
    if source is None:
        return "none"
    path = Path(source)
    if not path.is_dir():
        return str(source)
    return "\n".join(
        f"{p.relative_to(path)} {p.stat().st_size} {p.stat().st_mtime_ns}"
        for p in sorted(path.rglob("*"))
        if p.is_file()
    )


def _check(quantization: str) -> None:
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantization!r}; use one of {QUANTIZATIONS}")


def convert(loaded: LoadedModel, target: Path, quantization: str = "int8") -> Path:
    """Save ``loaded`` (adapter merged) and convert it to a CTranslate2 model in ``target``."""
    from ctranslate2.converters import TransformersConverter

    _check(quantization)
    if loaded.is_encoder_decoder:
        raise ValueError("the CTranslate2 engine serves causal models; use engine='torch'")
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        plain = tmp / "merged"
        loaded.model.save_pretrained(plain)
        loaded.tokenizer.save_pretrained(plain)
        TransformersConverter(str(plain)).convert(str(tmp / "ct2"), quantization=quantization)
        target.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # another process converted it first
            (tmp / "ct2").rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_ct2(
    base: str | None = None,
    adapter: str | Path | None = "default",
    *,
    quantization: str = "int8",
    threads: int | None = None,
) -> CT2Model:
    """Load ``base`` + ``adapter`` (as :func:`eotd.model_loading.load_model` reads them) into
    CTranslate2 on the CPU, converting on first use. ``threads`` defaults to ``$EOTD_THREADS``,
    else the cores this process may use."""
    import ctranslate2

    _check(quantization)
    source, adapter = resolve_sources(base, adapter)
    key = "\n".join(
        [_fingerprint(source), _fingerprint(adapter), quantization, ctranslate2.__version__]
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    folder = cache_dir() / "ct2" / f"{Path(source).name}-{quantization}-{digest}"
    if not (folder / "model.bin").is_file():
        convert(
            load_model(source, adapter or "none", device="cpu", dtype="fp32"), folder, quantization
        )
    tokenizer = AutoTokenizer.from_pretrained(source)
    prepare_tokenizer(tokenizer)
    threads = threads or int(os.environ.get("EOTD_THREADS", "0") or 0)
    threads = threads or len(os.sched_getaffinity(0))
    generator = ctranslate2.Generator(str(folder), device="cpu", intra_threads=threads)
    return CT2Model(
        generator=generator,
        tokenizer=tokenizer,
        base=source,
        adapter=adapter,
        folder=folder,
        dtype=quantization,
    )
