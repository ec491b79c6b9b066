"""Evaluate a student on math word-problem test sets, the way the EoTD paper reports it.

    python -m training.evaluate --model PATH_OR_ID [--adapter PATH] \\
        --datasets gsm8k,svamp,asdiv,multiarith [--limit N] [--output_dir runs/eval]

Its config composes the sections every entry point shares: ``student`` (``--model``,
``--adapter``, ``--engine``, ``--precision``, ``--device``, ``--threads``:
``eotd.engines.StudentChoice``) and ``generation`` (``--max_new_tokens``, ``--do_sample``,
``--num_samples``, ...: ``eotd.generation.GenerationSettings``).

Writes to ``output_dir``: ``metrics.json`` (per dataset: accuracy per thought, per vote strategy,
oracle, failure reasons of PoT/EoT, throughput), ``results.md`` (the same as Markdown tables),
``predictions_{dataset}.jsonl`` (every problem's thoughts, answers and votes) and ``config.yaml``.

Launched as several processes (``torchrun --nproc_per_node N -m training.evaluate ...``, or
``accelerate launch --num_processes N`` on N GPUs), each solves every N-th problem on its own GPU
or share of the CPU cores, and the first gathers the solutions and writes the same files one
process would (the same text where the batches are the same: ``--batch_size 1`` on a CPU).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from eotd import same_answer
from eotd.engines import StudentChoice, load
from eotd.model_loading import DEFAULT_BASE, DEFAULT_HUB_ID, available_cores, requested_threads
from eotd.prompts import THOUGHTS
from eotd.student import GenerationSettings, Solution, Student
from eotd.verifier import Selector, choose, load_selector
from eotd.vote import DEFAULT_ORDER
from training.config import load_config, save_config
from training.datasets import EVALUATION_SETS, load_problems
from training.distributed import World, current_world, gather, joined, shard, unshard

# Ways of choosing the answer reported: name -> (strategy, order of preference / tie-break).
STRATEGIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "verified": ("verified", DEFAULT_ORDER),  # the app's choice: the selector (eotd.verifier)
    "majority": ("majority", DEFAULT_ORDER),  # the vote (ties: PoT, EoT, CoT)
    "majority_eot_first": ("majority", ("eot", "pot", "cot")),
    "fallback_eot_pot_cot": ("fallback", ("eot", "pot", "cot")),
    "fallback_pot_eot_cot": ("fallback", ("pot", "eot", "cot")),
    "fallback_pot_cot": ("fallback", ("pot", "cot")),
}


@dataclass
class EvalConfig:
    """Evaluate a student (base + optional adapter) on test sets; write JSON, Markdown, JSONL."""

    student: StudentChoice = field(default_factory=StudentChoice)  # model, adapter, engine, ...
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    # vendored names, uniform JSONL files or hub:owner/name (see training/datasets.py)
    datasets: list[str] = field(default_factory=lambda: list(EVALUATION_SETS))
    limit: int = 0  # first N problems of each set; 0 = all
    output_dir: str = "runs/eval"
    batch_size: int = 0  # rows (problem x thought) per generate; 0: 768 on a GPU, 48 on a CPU
    selector: str = ""  # the answer selector's file for "verified"; "": models/selector.json
    label: str = ""  # name of this model in the tables; default: model (+ adapter)


def test_problems(spec: str, limit: int = 0) -> list[dict]:
    """Problems (id, question, answer) of a test set (see ``training.datasets.load_problems``)."""
    problems = load_problems(spec, "test")
    if limit > 0:
        problems = problems.select(range(min(limit, len(problems))))
    return list(problems)


def set_name(spec: str) -> str:
    """A short, file-name-safe name for a dataset spec ("gsm8k", "path/x.jsonl" -> "x")."""
    name = Path(spec.removeprefix("hub:")).stem if spec.endswith(".jsonl") else spec
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name.removeprefix("hub:"))


def _share(n: int, total: int) -> float:
    return round(100.0 * n / total, 2) if total else 0.0


def chosen(solution: Solution, selector: Selector | None = None) -> dict[str, float | None]:
    """The answer of each reported way of choosing (``STRATEGIES``)."""
    q, thoughts = solution.question, solution.thoughts
    return {
        name: choose(q, thoughts, strategy, order, selector=selector).answer
        for name, (strategy, order) in STRATEGIES.items()
    }


def score(
    problems: list[dict],
    solutions: list[Solution],
    seconds: float,
    selector: Selector | None = None,
) -> dict:
    """Accuracy per thought and per way of choosing, oracle, failure reasons and throughput."""
    total = len(problems)
    right: Counter[str] = Counter()
    answered: Counter[str] = Counter()
    statuses: dict[str, Counter[str]] = {t: Counter() for t in THOUGHTS}
    unfinished: Counter[str] = Counter()
    new_tokens = 0
    for problem, solution in zip(problems, solutions, strict=True):
        gold = float(problem["answer"])
        answers = solution.answers()
        for thought in THOUGHTS:
            picked = choose(solution.question, solution.thoughts, thought).answer
            right[thought] += same_answer(picked, gold)
            answered[thought] += picked is not None
        for name, answer in chosen(solution, selector).items():
            right[name] += same_answer(answer, gold)
        right["oracle"] += any(same_answer(a, gold) for v in answers.values() for a in v)
        for t in solution.thoughts:
            statuses[t.thought][t.status] += 1
            unfinished[t.thought] += not t.finished
            new_tokens += t.new_tokens
    samples = max(sum(statuses["cot"].values()), 1)
    return {
        "problems": total,
        "accuracy": {k: _share(right[k], total) for k in [*THOUGHTS, *STRATEGIES, "oracle"]},
        "answered": {t: _share(answered[t], total) for t in THOUGHTS},
        "status": {
            t: {s: _share(n, samples) for s, n in statuses[t].most_common()} for t in THOUGHTS
        },
        "hit_max_new_tokens": {t: _share(unfinished[t], samples) for t in THOUGHTS},
        "seconds": round(seconds, 2),
        "problems_per_second": round(total / seconds, 3) if seconds else None,
        "new_tokens_per_second": round(new_tokens / seconds, 1) if seconds else None,
    }


def markdown(label: str, results: dict[str, dict]) -> str:
    """Markdown tables of the results (accuracy in %, failures in % of attempts)."""
    names = list(results)
    acc_cols = [*THOUGHTS, *STRATEGIES, "oracle"]
    lines = [
        f"### {label}",
        "",
        "| set | n | " + " | ".join(c.replace("_", " ") for c in acc_cols) + " | problems/s |",
        "|---|---:|" + "---:|" * (len(acc_cols) + 1),
    ]
    for name in names:
        r = results[name]
        cells = [f"{r['accuracy'][c]:.1f}" for c in acc_cols]
        speed = r["problems_per_second"] or "n/a"  # unknown when rescored from predictions
        lines.append(f"| {name} | {r['problems']} | {' | '.join(cells)} | {speed} |")
    lines += ["", "Answered (% of problems) and failure reasons (% of attempts):", ""]
    lines += ["| set | thought | answered | statuses | hit max tokens |", "|---|---|---:|---|---:|"]
    for name in names:
        r = results[name]
        for t in THOUGHTS:
            status = ", ".join(f"{s} {v:.1f}" for s, v in r["status"][t].items())
            lines.append(
                f"| {name} | {t} | {r['answered'][t]:.1f} | {status} | "
                f"{r['hit_max_new_tokens'][t]:.1f} |"
            )
    return "\n".join(lines) + "\n"


def prediction_row(problem: dict, solution: Solution, selector: Selector | None = None) -> dict:
    """One line of ``predictions_{set}.jsonl`` (what ``training.rescore`` reads back)."""
    gold = float(problem["answer"])
    votes = chosen(solution, selector)
    return {
        "id": problem["id"],
        "question": problem["question"],
        "gold": problem["answer"],
        "thoughts": [t.to_dict() for t in solution.thoughts],
        "votes": votes,
        "correct": {name: same_answer(a, gold) for name, a in votes.items()},
    }


def _threads(cfg: EvalConfig, world: World) -> int:
    """CPU threads per process: as asked, else an equal share of the cores (0: the default)."""
    shared = max(1, available_cores() // world.local_size) if world.local_size > 1 else 0
    return requested_threads(cfg.student.threads) or shared


def _solve(
    student: Student, name: str, problems: list[dict], batch_size: int, world: World
) -> tuple[list[Solution], float] | None:
    """Solve this process's share of ``problems``; on the first process, every solution in the
    problems' order and the seconds the slowest process took (None on the others)."""
    mine = shard(problems, world)
    total = len(mine) * len(THOUGHTS) * student.settings.num_samples
    with tqdm(total=total, desc=name, unit="thought", disable=not world.first) as bar:
        started = time.perf_counter()
        solutions = student.solve_batch(
            [p["question"] for p in mine], batch_size=batch_size, progress=bar.update
        )
        seconds = time.perf_counter() - started
    parts = gather((solutions, seconds), world)
    if parts is None:
        return None
    return unshard([s for s, _ in parts]), max(t for _, t in parts)


def evaluate(cfg: EvalConfig) -> dict:
    """Run the evaluation described by ``cfg``; return {"label", "model", "datasets": {...}}
    (on the first process of several; the others return {})."""
    world = current_world()
    sets = {set_name(s): test_problems(s, cfg.limit) for s in cfg.datasets}  # fail early
    selector = load_selector(cfg.selector or None)
    out = Path(cfg.output_dir)
    if world.first:
        save_config(cfg, out)
    spec = cfg.student.resolve(threads=_threads(cfg, world))
    if spec.device == "cuda" and world.size > 1:
        torch.cuda.set_device(world.local_rank)  # "cuda" is this process's GPU
    student = Student(load(spec), cfg.generation)
    spec = student.engine.spec  # what runs (e.g. ct2's int8 computes as int8_float32)
    batch_size = cfg.batch_size or (768 if spec.device == "cuda" else 48)
    model = cfg.student.model
    base = DEFAULT_HUB_ID.rsplit("/", 1)[-1] if model == DEFAULT_BASE else model
    label = cfg.label or base + (f" + {spec.adapter}" if spec.adapter else " (no adapter)")
    if spec.engine != "torch" and not cfg.label:
        label += f" [{spec}]"
    results: dict[str, dict] = {}
    with joined(world):
        for name, problems in sets.items():
            solved = _solve(student, name, problems, batch_size, world)
            if solved is None:
                continue
            solutions, seconds = solved
            results[name] = score(problems, solutions, seconds, selector)
            with (out / f"predictions_{name}.jsonl").open("w", encoding="utf-8") as f:
                for problem, solution in zip(problems, solutions, strict=True):
                    f.write(json.dumps(prediction_row(problem, solution, selector)) + "\n")
    if not world.first:
        return {}
    report = {
        "label": label,
        "model": spec.base,
        "adapter": spec.adapter,
        "device": spec.device,
        "engine": spec.to_dict(),
        "batch_size": batch_size,
        "processes": world.size,
        "datasets": results,
    }
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "results.md").write_text(markdown(label, results), encoding="utf-8")
    return report


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(EvalConfig, argv)
    report = evaluate(cfg)
    if report:
        print(markdown(report["label"], report["datasets"]))


if __name__ == "__main__":
    main()
