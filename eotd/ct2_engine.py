"""A fast CPU engine for the student: the merged model converted to CTranslate2.

On a 2-core CPU, PyTorch's eager ``generate`` spends most of a decoding step dispatching small
ops; CTranslate2 decodes the same model in C++. With float32 weights (the app's default on a CPU,
``eotd.engines.CT2_PRECISION``) it writes exactly PyTorch float32's text, about twice as fast;
int8 weights are faster still but change most answers, differently on different CPUs (the model
card's "Choosing the CPU engine"). The conversion (base + merged adapter) takes about a minute and
is cached next to the plain GGUF copy, keyed by the model files and the weight type, so a new
adapter gets a new copy (a host whose disk is wiped, such as a Space, converts at each cold start).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from eotd.generation import EngineSpec, GenerationSettings, RowEnds, continuation_ids, mean
from eotd.model_loading import (
    LoadedModel,
    available_cores,
    building,
    cache_dir,
    cpu_features,
    end_token_ids,
    load_model,
    prepare_tokenizer,
    requested_threads,
    resolve_sources,
)

# The weight types CTranslate2 converts to; which of them a CPU computes in natively:
# ``ctranslate2.get_supported_compute_types("cpu")`` (bfloat16 needs AVX512-BF16 or AMX).
QUANTIZATIONS = ("int8", "int8_float32", "int16", "float32", "bfloat16", "int8_bfloat16")
# The files that make a model or an adapter (a folder may hold others: a card, evaluations).
MODEL_FILES = ("*.json", "*.safetensors", "*.bin", "*.model", "*.jinja", "*.txt")


class CT2Engine:
    """A student converted to CTranslate2 (see ``load_ct2``), writing on the CPU."""

    def __init__(
        self, generator: Any, tokenizer: PreTrainedTokenizerBase, base: str,
        adapter: str | None, folder: Path, threads: int,
    ) -> None:  # fmt: skip
        self.generator = generator  # ctranslate2.Generator
        self.tokenizer = tokenizer
        self.folder = folder  # the converted model
        self.end_ids = set(end_token_ids(tokenizer))
        # What runs: CTranslate2's compute type (int8 weights compute as int8_float32 on a CPU).
        self.spec = EngineSpec(
            "ct2", generator.compute_type, "cpu", base, adapter, threads, cpu_features()
        )

    def generate_rows(
        self, prompts: Sequence[str], settings: GenerationSettings, rows: RowEnds
    ) -> None:
        """Write the rows (see ``eotd.generation.Engine``) through CTranslate2's per-token
        callback. Greedy log-probabilities equal the torch engine's (tested); when sampling they
        are CTranslate2's own ``log_prob``."""
        k = settings.num_samples
        ids = [row for row in self.tokenizer(list(prompts))["input_ids"] for _ in range(k)]
        stepper = _Stepper(self.tokenizer, settings.stop_strings, self.end_ids, ids, rows)
        sampling = (
            {"sampling_topk": settings.top_k, "sampling_topp": settings.top_p,
             "sampling_temperature": settings.temperature}
            if settings.do_sample else {"sampling_topk": 1}
        )  # fmt: skip
        self.generator.generate_batch(
            [self.tokenizer.convert_ids_to_tokens(row) for row in ids],
            max_length=settings.max_new_tokens,
            end_token=sorted(self.end_ids),
            include_prompt_in_result=False,
            return_scores=True,  # each step's log_prob, for ThoughtResult.mean_logprob
            callback=stepper.step,
            **sampling,
        )
        rows.finish_rest()

    def score(
        self, prompts: Sequence[str], texts: Sequence[str], ended: Sequence[bool]
    ) -> list[float | None]:
        """Mean log-probabilities of ``texts`` (see ``eotd.generation.Engine.score``) from one
        teacher-forced pass: CTranslate2's ``score_batch`` (batches sorted by length)."""
        pairs = continuation_ids(self.tokenizer, prompts, texts, ended)
        results = self.generator.score_batch(
            [self.tokenizer.convert_ids_to_tokens(p + t) for p, t in pairs],
            max_batch_size=32,
            max_input_length=0,  # never truncate (CTranslate2 cuts at 1,024 tokens by default)
        )
        # log_probs[i] is the log-probability of token i + 1 given those before it.
        return [mean(r.log_probs[len(p) - 1 :]) for r, (p, _) in zip(results, pairs, strict=True)]


class _Stepper:
    """Takes CTranslate2's per-token callbacks (from its own thread) and ends rows like
    transformers' ``generate`` does: on an end token, a stop string, or the token limit."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        stop_strings: Sequence[str],
        end_ids: set[int],
        prompts: list[list[int]],
        rows: RowEnds,
    ) -> None:
        self.tokenizer = tokenizer
        self.stop_strings = tuple(stop_strings)
        self.end_ids = end_ids
        self.rows = rows
        # Enough tokens to hold the longest stop string (a token is at least one character).
        self.window = max((len(s) for s in self.stop_strings), default=0) + 1
        # As in transformers, a stop string may begin in the prompt (prompts end with "\n").
        self.prompt_tails = [row[-self.window :] for row in prompts]

    def step(self, result: Any) -> bool:
        """Take one generated token; True tells CTranslate2 to stop this row."""
        row, rows = result.batch_id, self.rows
        if rows.done[row]:
            return True
        rows.score(row, result.log_prob)
        if result.token_id in self.end_ids:
            rows.finish(row, True)
            return True
        rows.append(row, result.token_id)
        if self.stop_strings:
            written = self.prompt_tails[row] + rows.tokens[row]
            tail = self.tokenizer.decode(written[-self.window :])
            if any(stop in tail for stop in self.stop_strings):
                rows.finish(row, True)
                return True
        if result.is_last:  # ran into max_new_tokens
            rows.finish(row, False)
            return True
        return False


def _fingerprint(source: str | None) -> str:
    """Identify a model source: its model files' names, sizes and times, or the hub id."""
    if source is None:
        return "none"
    path = Path(source)
    if not path.is_dir():
        return source
    files = sorted({f for pattern in MODEL_FILES for f in path.glob(pattern) if f.is_file()})
    return "\n".join(f"{f.name} {f.stat().st_size} {f.stat().st_mtime_ns}" for f in files)


def check_quantization(quantization: str) -> None:
    """Refuse a weight type CTranslate2 does not know, or this CPU cannot compute in (before a
    minute of conversion)."""
    import ctranslate2

    if quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantization!r}; use one of {QUANTIZATIONS}")
    here = ctranslate2.get_supported_compute_types("cpu")
    if quantization not in here:
        raise ValueError(
            f"this CPU ({cpu_features()}) cannot compute {quantization} in CTranslate2 (bfloat16 "
            f"needs AVX512-BF16 or AMX); it computes {', '.join(sorted(here))}"
        )


def convert(loaded: LoadedModel, target: Path, quantization: str = "float32") -> Path:
    """Save ``loaded`` (adapter merged) and convert it to a CTranslate2 model in ``target``."""
    from ctranslate2.converters import TransformersConverter

    check_quantization(quantization)
    if loaded.is_encoder_decoder:
        raise ValueError("the CTranslate2 engine serves causal models; use engine='torch'")
    with tempfile.TemporaryDirectory() as merged, building(target) as tmp:
        loaded.model.save_pretrained(merged)
        loaded.tokenizer.save_pretrained(merged)
        TransformersConverter(merged).convert(str(tmp), quantization=quantization)
    if not (target / "model.bin").is_file():
        raise RuntimeError(f"{target} exists but holds no converted model; remove it and retry")
    return target


def load_ct2(
    base: str | None = None,
    adapter: str | Path | None = "default",
    *,
    quantization: str = "float32",
    threads: int | None = None,
) -> CT2Engine:
    """Load ``base`` + ``adapter`` (as :func:`eotd.model_loading.load_model` reads them) into
    CTranslate2 on the CPU, converting on first use. ``threads`` defaults to ``$EOTD_THREADS``,
    else the cores this process may use."""
    import ctranslate2

    check_quantization(quantization)
    source, adapter = resolve_sources(base, adapter)
    key = "\n".join(
        [_fingerprint(source), _fingerprint(adapter), quantization, ctranslate2.__version__]
    )
    # One folder per (base, adapter path, quantization); its suffix changes with their files.
    where = hashlib.sha256(f"{source}\n{adapter}".encode()).hexdigest()[:8]
    prefix = f"{Path(source).name}-{where}-{quantization}-"
    folder = cache_dir() / "ct2" / (prefix + hashlib.sha256(key.encode()).hexdigest()[:16])
    if not (folder / "model.bin").is_file():
        # fp32 and no $EOTD_QUANTIZE: the conversion quantizes
        loaded = load_model(source, adapter or "none", device="cpu", dtype="fp32", quantize="none")
        convert(loaded, folder, quantization)
        for stale in folder.parent.glob(prefix + "*"):  # earlier files of the same model
            if stale != folder and ".tmp" not in stale.name:
                shutil.rmtree(stale, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(source)
    prepare_tokenizer(tokenizer)
    threads = requested_threads(threads) or available_cores()
    generator = ctranslate2.Generator(
        str(folder), device="cpu", compute_type=quantization, intra_threads=threads
    )
    return CT2Engine(generator, tokenizer, source, adapter, folder, threads)
