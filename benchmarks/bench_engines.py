"""Choose the CPU engine: each candidate's accuracy, its fidelity to PyTorch float32, and speed.

    python -m benchmarks.bench_engines [--candidates torch:float32,ct2:float32,ct2:int8]
        [--gsm8k 300] [--output_dir runs/engines] [--steps eval,latency,report]

For every candidate ``engine:precision`` (see ``eotd.engines.resolve``): ``eval`` evaluates the
shipped student greedily on the first ``gsm8k`` GSM8K test problems and all of MultiArith
(``training.evaluate``, ``eval_threads`` each; a candidate already evaluated in ``output_dir`` is
kept, so candidates can run as separate processes, one per core, with ``--candidates X``);
``latency`` times one question at a time on ``threads`` (``benchmarks.bench_student``);
``report`` pairs each candidate with the first one, the reference (``training.compare``:
accuracy per thought and vote, discordant pairs, sign test, same-answer rate) and writes
``engines.md`` and ``engines.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.bench_student import BenchConfig
from benchmarks.bench_student import bench as bench_latency
from eotd.engines import StudentChoice, resolve
from training.compare import Paired, pair
from training.config import load_config, save_config
from training.evaluate import EvalConfig, evaluate

SETS = ("gsm8k", "multiarith")
VOTE = "majority"


@dataclass
class EnginesConfig:
    """Measure candidate CPU engines against PyTorch float32, side by side."""

    candidates: list[str] = field(
        default_factory=lambda: ["torch:float32", "ct2:float32", "ct2:int8"]
    )  # engine:precision; the first is the reference
    gsm8k: int = 300  # first N GSM8K test problems (MultiArith: all)
    output_dir: str = "runs/engines"
    steps: list[str] = field(default_factory=lambda: ["eval", "latency", "report"])
    eval_threads: int = 1
    batch_size: int = 48  # rows per generate in the evaluation
    threads: int = 2  # for the latency step
    n: int = 15  # latency: GSM8K test questions answered one at a time


def _folder(cfg: EnginesConfig, candidate: str, name: str) -> Path:
    return Path(cfg.output_dir) / candidate.replace(":", "_") / name


def run_eval(cfg: EnginesConfig, candidate: str) -> None:
    engine, _, precision = candidate.partition(":")
    for name in SETS:
        out = _folder(cfg, candidate, name)
        if (out / f"predictions_{name}.jsonl").is_file():
            continue
        evaluate(
            EvalConfig(
                StudentChoice(engine=engine, precision=precision, device="cpu",
                              threads=cfg.eval_threads),
                datasets=[name], limit=cfg.gsm8k if name == "gsm8k" else 0,
                output_dir=str(out), batch_size=cfg.batch_size,
            )
        )  # fmt: skip


def run_latency(cfg: EnginesConfig, candidate: str) -> dict:
    engine, _, precision = candidate.partition(":")
    precision = resolve(engine, precision, "cpu").precision  # fp32 -> float32, and checked
    torch_variants = {"float32": "batched", "bfloat16": "bf16"}
    if engine == "torch" and precision not in torch_variants:
        raise ValueError(f"bench_student times torch in {', '.join(torch_variants)} only")
    variant = f"ct2_{precision}" if engine == "ct2" else torch_variants[precision]
    (result,) = bench_latency(
        BenchConfig(device="cpu", n=cfg.n, variants=[variant], threads=cfg.threads)
    )
    path = _folder(cfg, candidate, "latency.json")
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def _seconds(cfg: EnginesConfig, candidate: str) -> dict | None:
    path = _folder(cfg, candidate, "latency.json")
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def report(cfg: EnginesConfig) -> dict:
    """Pair every candidate with the reference on each set; the table as Markdown and JSON."""
    reference = cfg.candidates[0]
    rows: dict[str, dict] = {}
    for candidate in cfg.candidates:
        paired: dict[str, list[Paired]] = {}
        for name in SETS:
            file = f"{name}/predictions_{name}.jsonl"
            a, b = _folder(cfg, reference, file), _folder(cfg, candidate, file)
            if a.is_file() and b.is_file():
                paired[name] = pair(a, b, VOTE)
        rows[candidate] = {
            "sets": {k: [asdict(p) for p in v] for k, v in paired.items()},
            "latency": _seconds(cfg, candidate),
        }
    table = markdown(reference, rows)
    out = Path(cfg.output_dir)
    (out / "engines.md").write_text(table, encoding="utf-8")
    (out / "engines.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    print(table)
    return rows


def markdown(reference: str, rows: dict[str, dict]) -> str:
    lines = [
        f"Paired against `{reference}` on the same problems; accuracy in %, sign test p of the "
        "discordant pairs, same answer as the reference in %; seconds per question on the "
        "latency step's threads.",
        "",
        "| candidate | set | n | CoT | PoT | EoT | vote | vote: only ref / only this (p) "
        "| same answer: CoT / PoT / EoT / vote | p50 s | p90 s |",
        "|---|---|---:|---:|---:|---:|---:|---|---|---:|---:|",
    ]
    for candidate, row in rows.items():
        seconds = row["latency"] or {}
        for name, paired in row["sets"].items():
            accuracy = " | ".join(str(p["accuracy_b"]) for p in paired)
            vote = paired[-1]
            same = " / ".join(str(p["same_answer"]) for p in paired)
            lines.append(
                f"| {candidate} | {name} | {vote['problems']} | {accuracy} | "
                f"{vote['only_a']} / {vote['only_b']} ({vote['p_value']}) | {same} | "
                f"{seconds.get('p50_s', '–')} | {seconds.get('p90_s', '–')} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(EnginesConfig, argv)
    save_config(cfg, Path(cfg.output_dir), name="engines_config.yaml")
    for candidate in cfg.candidates:
        if "eval" in cfg.steps:
            run_eval(cfg, candidate)
    for candidate in cfg.candidates:
        if "latency" in cfg.steps:
            run_latency(cfg, candidate)
    if "report" in cfg.steps:
        report(cfg)


if __name__ == "__main__":
    main()
