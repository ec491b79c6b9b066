"""Latency of answering one question (three thoughts, executed, voted), per speed-up.

    python -m benchmarks.bench_student [--model default] [--adapter default] [--device cpu]
        [--n 20] [--variants batched,sequential,int8,static_cache] [--max_new_tokens 256]

Each variant loads the student, warms it up on one question, then answers the first ``n`` GSM8K
test questions one at a time and prints p50/p90 seconds per question, new tokens per question and
decoding steps per second (a step writes one token of every running thought), so that latencies
can be projected to other answer lengths. Variants (each is the default path plus one change):

- ``batched``: the three thoughts in one ``generate`` (the default path);
- ``sequential``: one ``generate`` per thought (what batching gains);
- ``no_kv_cache``: generation without the KV cache (what caching gains);
- ``unmerged``: the adapter kept separate instead of merged into the weights;
- ``bf16``: bfloat16 weights; ``int8``: dynamic int8 quantization of the linear layers (CPU);
- ``static_cache``: a static KV cache; ``compile``: static cache + ``torch.compile`` of the forward;
- ``ct2``: the CTranslate2 engine (int8 weights, C++ decoding; CPU), see ``eotd.ct2_engine``;
  ``ct2_float32``, ``ct2_int16``, ...: the same engine with other weights.

Targets (issue 4): p50 <= 3 s on a 2-core CPU, <= 0.5 s on one H100/H200.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field

import torch

from eotd.ct2_engine import QUANTIZATIONS
from eotd.engines import load, resolve
from eotd.model_loading import load_model
from eotd.prompts import THOUGHTS
from eotd.student import GenerationSettings, Student, combine
from eotd.torch_engine import TorchEngine
from training.config import load_config
from training.datasets import load_problems

VARIANTS = (
    "batched", "sequential", "no_kv_cache", "unmerged", "bf16", "int8", "static_cache", "compile",
    "ct2", *(f"ct2_{q}" for q in QUANTIZATIONS),
)  # fmt: skip


@dataclass
class BenchConfig:
    """Time one-question answers of the student under several speed-ups."""

    model: str = "default"
    adapter: str = "default"
    device: str = "auto"
    n: int = 20
    variants: list[str] = field(default_factory=lambda: ["batched", "sequential"])
    max_new_tokens: int = 256
    threads: int = 0  # CPU threads; 0: $EOTD_THREADS or the engine's default
    json_out: str = ""  # also write the results here (rewritten after each variant)


def p90(values: list[float]) -> float:
    """The 90th percentile (the value itself when there is one)."""
    return statistics.quantiles(values, n=10)[8] if len(values) > 1 else values[0]


def _student(cfg: BenchConfig, variant: str) -> Student:
    settings = GenerationSettings(max_new_tokens=cfg.max_new_tokens)
    if variant.startswith("ct2"):
        precision = variant.partition("_")[2] or "int8"
        spec = resolve("ct2", precision, "cpu", cfg.model, cfg.adapter, cfg.threads)
        return Student(load(spec), settings)
    loaded = load_model(
        cfg.model, cfg.adapter, device=cfg.device, dtype="bf16" if variant == "bf16" else "auto",
        merge=variant != "unmerged", threads=cfg.threads,
        quantize="int8" if variant == "int8" else None,
    )  # fmt: skip
    model = loaded.model
    if variant == "no_kv_cache":
        model.generation_config.use_cache = False
    if variant in ("static_cache", "compile"):
        model.generation_config.cache_implementation = "static"
    if variant == "compile":
        from transformers import CompileConfig

        compile_config = CompileConfig()
        compile_config._compile_all_devices = True  # transformers compiles on GPUs only otherwise
        model.generation_config.compile_config = compile_config
    else:
        model.generation_config.disable_compile = True
    return Student(TorchEngine(loaded), settings)


def _answer(student: Student, question: str, variant: str) -> tuple[int, int]:
    """Answer one question; return (new tokens written, decoding steps: the longest thought)."""
    if variant == "sequential":
        results = [r for t in THOUGHTS for r in student.solve_iter(question, thoughts=[t])]
    else:
        results = list(student.solve_iter(question))
    solution = combine(question, results)
    lengths = [t.new_tokens for t in solution.thoughts]
    return sum(lengths), sum(lengths) if variant == "sequential" else max(lengths)


def bench(cfg: BenchConfig) -> list[dict]:
    """Time every variant in ``cfg``; return one result dict per variant."""
    unknown = set(cfg.variants) - set(VARIANTS)
    if unknown:
        raise ValueError(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    questions = [p["question"] for p in load_problems("gsm8k", "test").select(range(cfg.n + 1))]
    results = []
    for variant in cfg.variants:
        student = _student(cfg, variant)
        started = time.perf_counter()
        _answer(student, questions[0], variant)  # warm-up (and compilation)
        warmup = time.perf_counter() - started
        seconds, tokens, steps = [], [], []
        for question in questions[1:]:
            started = time.perf_counter()
            written, longest = _answer(student, question, variant)
            seconds.append(time.perf_counter() - started)
            tokens.append(written)
            steps.append(longest)
        spec = student.engine.spec
        result = {
            "variant": variant,
            "engine": str(spec),
            "gpu": torch.cuda.get_device_name() if spec.device == "cuda" else None,
            "adapter": spec.adapter,
            "n": len(seconds),
            "p50_s": round(statistics.median(seconds), 3),
            "p90_s": round(p90(seconds), 3),
            "new_tokens_per_question": round(statistics.mean(tokens), 1),
            "decode_steps_per_s": round(sum(steps) / sum(seconds), 1),
            "warmup_s": round(warmup, 2),
        }
        results.append(result)
        print(json.dumps(result), flush=True)
        if cfg.json_out:  # after each variant, so a run cut short keeps what it measured
            with open(cfg.json_out, "w", encoding="utf-8") as f:
                json.dump(results, f, indent=2)
        del student
    return results


def main(argv: list[str] | None = None) -> None:
    bench(load_config(BenchConfig, argv))


if __name__ == "__main__":
    main()
