"""Seconds per training step of one CPU process against several, at the same global batch.

    python -m benchmarks.bench_train_processes [--base tiny|default|PATH] [--processes 1,2]
        [--global_batch 8] [--rows 32] [--steps 16] [--repeats 3]

Each run fine-tunes a LoRA adapter on the first ``rows`` GSM8K training problems (the question and
its worked solution as a CoT target) for ``steps`` optimizer steps on the CPU: one process with all
the cores (``python -m training.train``), or N processes (``torchrun``, gloo) with an equal share
of the cores and ``global_batch / N`` rows each. A step's time is an epoch's wall time over its
steps (no checkpoint or validation inside an epoch), and the median is over every epoch of every
repeat but each run's first (warm-up). ``base``: "tiny" (the tests' tiny model, built here),
"default" (SmolLM2-135M-Instruct) or a folder. Prints one JSON line per process count and the load
average before and after: on a shared machine, other people's work is in the figures.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset

from eotd.model_loading import available_cores
from eotd.prompts import build_prompt
from training.config import load_config
from training.datasets import load_problems
from training.tiny_model import make_tiny_model


@dataclass
class BenchConfig:
    """Time training steps of one process against several at the same global batch (CPU)."""

    base: str = "tiny"  # "tiny", "default" (SmolLM2-135M-Instruct) or a model folder
    processes: list[int] = field(default_factory=lambda: [1, 2])
    global_batch: int = 8  # rows per optimizer step, over all processes
    rows: int = 32  # GSM8K training problems: rows / global_batch steps an epoch
    steps: int = 16
    repeats: int = 3
    threads: int = 0  # CPU threads of each process; 0: an equal share of the cores


def _threads(cfg: BenchConfig, processes: int) -> int:
    return cfg.threads or max(1, available_cores() // processes)


def _rows(n: int) -> list[dict]:
    problems = load_problems("gsm8k", "train").select(range(n))
    return [
        {"id": p["id"], "question": p["question"], "thought": "cot", "target": p["solution"],
         "answer": float(p["answer"]), "source": "gsm8k", "origin_id": p["id"]}
        for p in problems
    ]  # fmt: skip


def _run(cfg: BenchConfig, base: str, data: Path, out: Path, processes: int) -> list[float]:
    """Train once with ``processes`` processes; the seconds of each epoch's steps."""
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    args = [
        "--config", "training/configs/tiny_cpu.yaml", "--base", base, "--data", str(data),
        "--output_dir", str(out), "--method", "lora", "--batch_size",
        str(cfg.global_batch // processes), "--max_steps", str(cfg.steps), "--val_fraction", "0",
        "--save_every", str(10 * cfg.steps), "--logging_steps", str(10 * cfg.steps),
        "--threads", str(_threads(cfg, processes)), "--max_length", "512",
    ]  # fmt: skip
    cmd = [sys.executable, *(launcher if processes > 1 else []), "-m", "training.train", *args]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({run.returncode}):\n{run.stderr[-3000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["processes"] == processes, metrics
    return metrics["epoch_seconds"]


def bench(cfg: BenchConfig) -> list[dict]:
    """One result per process count: median seconds per step and rows per second."""
    if cfg.rows % cfg.global_batch or any(cfg.global_batch % n for n in cfg.processes):
        raise ValueError("rows must be a multiple of global_batch, and that of each process count")
    steps_per_epoch = cfg.rows // cfg.global_batch
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        rows = _rows(cfg.rows)
        Dataset.from_list(rows).save_to_disk(str(data))
        base = cfg.base
        if base == "tiny":
            texts = [build_prompt(r["question"], r["thought"]) + r["target"] for r in rows]
            base = str(make_tiny_model(Path(tmp) / "tiny", texts, vocab_size=2000))
        for n in cfg.processes:
            epochs = []
            for repeat in range(cfg.repeats):
                seconds = _run(cfg, base, data, Path(tmp) / f"run{n}-{repeat}", n)
                epochs += seconds[1:]
            step = statistics.median(epochs) / steps_per_epoch
            results.append({
                "base": cfg.base, "processes": n, "threads_each": _threads(cfg, n),
                "global_batch": cfg.global_batch, "epochs_timed": len(epochs),
                "median_s_per_step": round(step, 4),
                "rows_per_s": round(cfg.global_batch / step, 2),
            })  # fmt: skip
    return results


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(BenchConfig, argv)
    before = os.getloadavg()
    results = bench(cfg)
    one = next((r for r in results if r["processes"] == 1), None)
    for r in results:
        if one is not None:
            r["speedup_vs_1"] = round(one["median_s_per_step"] / r["median_s_per_step"], 2)
        print(json.dumps(r))
    after = os.getloadavg()
    print(json.dumps({"cores": available_cores(), "load_before": before, "load_after": after}))


if __name__ == "__main__":
    main()
