"""Build an ETD training set: CoT, PoT and EoT targets, verified against the gold answers.

    python -m training.build_data --teacher rule --out outputs/etd_rule [--augment 2]
    python -m training.build_data --teacher llm --model NAME --base_url URL --samples 4 --out DIR

Writes into ``--out``: a `datasets.DatasetDict` (``train``/``validation``) saved with
``save_to_disk`` (load it with ``datasets.load_from_disk(DIR)``), the same rows as
``train.jsonl``/``validation.jsonl``, ``stats.json`` (rows per thought and source, coverage,
drop reasons, the leak check, teacher cost, build time) and the resolved ``config.yaml``.
Columns: ``id, question, thought, target, answer, source, origin_id``.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

import datasets

from eotd.prompts import THOUGHTS
from training.config import load_config, save_config
from training.datasets import evaluation_questions, leak_check, normalize_question, train_validation
from training.parallel import map_items
from training.teachers.llm import (
    ChatClient,
    LLMSettings,
    TeacherError,
    build_requests,
    extract_target,
)
from training.teachers.rule import ConversionError, convert
from training.teachers.verify import check_many

COLUMNS = ("id", "question", "thought", "target", "answer", "source", "origin_id")


@dataclass
class BuildConfig:
    """Build a verified CoT/PoT/EoT training set (see `python -m training.build_data --help`)."""

    teacher: Literal["rule", "llm"] = "rule"
    out: Path | None = None  # default: outputs/etd_<teacher>
    train_data: str = "gsm8k"  # vendored name, uniform JSONL path or hub:owner/name[:config]
    validation_size: int = 200
    seed: int = 0
    limit: int | None = None  # use only the first N problems of each split (quick runs)
    thoughts: list[str] = field(default_factory=lambda: list(THOUGHTS))
    augment: int = 0  # new problems made per problem by changing its numbers (train only)
    eot_comments: Literal["sentence", "short"] = "sentence"  # rule EoT: whole sentences or words
    num_proc: int = 1  # processes for the rule teacher and augmentation (same output)
    workers: int = 4  # threads checking targets with the engine
    timeout: float = 5.0  # seconds per engine check
    # LLM teacher (unset endpoint values come from OPENAI_BASE_URL, OPENAI_API_KEY,
    # EOTD_TEACHER_MODEL; the key is never written to config.yaml)
    base_url: str | None = None
    api_key: str | None = None
    model: str | None = None
    samples: int = 1
    temperature: float = 0.7
    max_tokens: int = 512
    concurrency: int = 8
    request_timeout: float = 60.0
    retries: int = 5
    cache: Path | None = None  # default: OUT/llm_cache.jsonl
    progress: bool = True


@dataclass
class Candidate:
    """A target to check; becomes a row if it reaches the gold answer."""

    id: str
    question: str
    thought: str
    target: str
    answer: float
    source: str
    origin_id: str | None = None
    problem: str = ""  # the problem the row counts towards in coverage (origin for variants)


@dataclass
class BuildResult:
    """The rows kept per split and the statistics written to stats.json."""

    rows: dict[str, list[dict[str, Any]]]
    stats: dict[str, Any]


def rule_targets(problem: dict[str, Any], comments: str = "sentence") -> dict[str, str] | str:
    """The rule teacher's targets for one problem by thought, or why it has none."""
    if not problem.get("solution"):
        return "no_solution"
    try:
        return convert(
            problem["question"], problem["solution"], problem["answer"], comments
        ).targets()
    except ConversionError as err:
        return err.reason


def rule_candidates(
    problems: list[dict[str, Any]],
    thoughts: list[str],
    drops: Counter,
    comments: str = "sentence",
    num_proc: int = 1,
) -> list[Candidate]:
    """Targets from GSM8K's annotated rationales, converted in `num_proc` processes; conversion
    failures counted in `drops`."""
    converted = map_items(
        partial(rule_targets, comments=comments), problems, num_proc, "rule teacher"
    )
    out = []
    for p, targets in zip(problems, converted, strict=True):
        if isinstance(targets, str):
            drops[f"rule:{targets}"] += 1
            continue
        for thought in thoughts:
            if thought not in targets:
                drops[f"rule:{thought}:no_target"] += 1
                continue
            row_id = f"{p['id']}:{thought}"
            out.append(
                Candidate(row_id, p["question"], thought, targets[thought], p["answer"], "rule",
                          p.get("origin_id"), p.get("origin_id") or p["id"])
            )  # fmt: skip
    return out


def llm_candidates(
    cfg: BuildConfig, problems: list[dict[str, Any]], drops: Counter
) -> tuple[list[Candidate], dict[str, Any]]:
    """`cfg.samples` completions per problem and thought from the LLM teacher."""
    same = ("base_url", "api_key", "model", "samples", "temperature", "max_tokens", "concurrency")
    settings = LLMSettings(
        **{name: getattr(cfg, name) for name in (*same, "retries", "progress")},
        timeout=cfg.request_timeout,
        cache=cfg.cache or Path(cfg.out or ".") / "llm_cache.jsonl",
    )
    client = ChatClient(settings)
    try:
        by_id = {p["id"]: p for p in problems}
        replies = client.complete_all(build_requests(problems, cfg.thoughts, cfg.samples))
    finally:
        client.close()
    source = f"llm:{client.settings.model}"
    out = []
    for reply in replies:
        req = reply.request
        if reply.text is None:
            drops[f"llm:{reply.error}"] += 1
            continue
        p = by_id[req.problem_id]
        target = extract_target(req.thought, reply.text)
        row_id = f"{p['id']}:{req.thought}:{req.sample}"
        out.append(
            Candidate(row_id, p["question"], req.thought, target, p["answer"], source,
                      None, p["id"])
        )  # fmt: skip
    return out, client.stats.to_dict() | {"model": client.settings.model}


def verify(cfg: BuildConfig, candidates: list[Candidate], drops: Counter) -> list[Candidate]:
    """Keep the candidates whose target reaches the gold answer, once per distinct target."""
    results = check_many(
        [(c.thought, c.target, c.answer) for c in candidates],
        workers=cfg.workers,
        timeout=cfg.timeout,
    )
    kept, seen = [], set()
    for cand, result in zip(candidates, results, strict=True):
        if not result.ok:
            drops[result.reason or "unknown"] += 1
            continue
        key = (normalize_question(cand.question), cand.thought, " ".join(cand.target.split()))
        if key in seen:
            drops[f"{cand.thought}:duplicate"] += 1
            continue
        seen.add(key)
        kept.append(cand)
    return kept


def drop_leaks(
    problems: list[dict[str, Any]], eval_questions: set[str], drops: Counter
) -> list[dict[str, Any]]:
    """Problems whose question is not an evaluation question."""
    kept = [p for p in problems if normalize_question(p["question"]) not in eval_questions]
    if len(kept) < len(problems):
        drops["leak:evaluation_question"] += len(problems) - len(kept)
    return kept


def _coverage(kept: list[Candidate], problems: list[dict[str, Any]]) -> dict[str, Any]:
    """Share of problems with at least one verified target per thought (originals only)."""
    have: dict[str, set[str]] = defaultdict(set)
    for c in kept:
        if c.origin_id is None:
            have[c.thought].add(c.problem)
    n = len(problems) or 1
    ids = {p["id"] for p in problems}
    every = set.intersection(*(have[t] for t in THOUGHTS)) if have else set()
    out: dict[str, Any] = {"problems": len(problems)}
    for thought in THOUGHTS:
        out[thought] = {"verified": len(have[thought] & ids), "rate": len(have[thought]) / n}
    out["all_three"] = {"verified": len(every & ids), "rate": len(every) / n}
    return out


def resolve(cfg: BuildConfig) -> BuildConfig:
    """The config with its output folder filled in."""
    return cfg if cfg.out is not None else replace(cfg, out=Path(f"outputs/etd_{cfg.teacher}"))


def build(cfg: BuildConfig) -> BuildResult:
    """Make, verify and de-duplicate the targets of every split; see the module docstring."""
    started = time.perf_counter()
    cfg = resolve(cfg)
    unknown = set(cfg.thoughts) - set(THOUGHTS)
    if unknown:
        raise ValueError(f"unknown thought(s) {sorted(unknown)}; expected some of {THOUGHTS}")
    train, validation = train_validation(cfg.train_data, cfg.validation_size, cfg.seed)
    splits = {"train": list(train), "validation": list(validation)}
    if cfg.limit is not None:
        splits = {name: rows[: cfg.limit] for name, rows in splits.items()}
    drops: Counter = Counter()
    eval_questions = evaluation_questions()
    splits = {name: drop_leaks(rows, eval_questions, drops) for name, rows in splits.items()}

    teacher_stats: dict[str, Any] = {}
    candidates: dict[str, list[Candidate]] = {}
    for name, problems in splits.items():
        if cfg.teacher == "rule":
            candidates[name] = rule_candidates(
                problems, cfg.thoughts, drops, cfg.eot_comments, cfg.num_proc
            )
        else:
            candidates[name], cost = llm_candidates(cfg, problems, drops)
            teacher_stats[name] = cost

    augment_stats: dict[str, Any] = {}
    if cfg.augment > 0:
        from training.augment import augment_problems

        variants, augment_stats = augment_problems(
            splits["train"], cfg.augment, cfg.seed, cfg.num_proc
        )
        variants = drop_leaks(variants, eval_questions, drops)
        augmented = rule_candidates(variants, cfg.thoughts, drops, cfg.eot_comments, cfg.num_proc)
        candidates["train"] += [replace(c, source="augment") for c in augmented]

    kept = {name: verify(cfg, cands, drops) for name, cands in candidates.items()}
    rows = {
        name: [{k: asdict(c)[k] for k in COLUMNS} for c in cands] for name, cands in kept.items()
    }
    report = leak_check(q for name in rows for q in {r["question"] for r in rows[name]})
    if not report.clean:
        raise RuntimeError(f"evaluation questions reached training data: {report.summary()}")

    stats = {
        "teacher": cfg.teacher,
        "problems": {name: len(p) for name, p in splits.items()},
        "rows": {name: len(r) for name, r in rows.items()},
        "per_thought": {n: dict(Counter(r["thought"] for r in rs)) for n, rs in rows.items()},
        "per_source": {n: dict(Counter(r["source"] for r in rs)) for n, rs in rows.items()},
        "coverage": {name: _coverage(kept[name], splits[name]) for name in kept},
        "coverage_all_problems": _coverage(
            kept["train"] + kept["validation"], splits["train"] + splits["validation"]
        ),
        "drops": dict(sorted(drops.items())),
        "augment": augment_stats,
        "teacher_cost": teacher_stats,
        "leak_check": report.to_dict(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    return BuildResult(rows, stats)


def write(cfg: BuildConfig, result: BuildResult) -> None:
    """Save the DatasetDict, the JSONL files, stats.json and config.yaml into `cfg.out`."""
    cfg = resolve(cfg)
    out = Path(cfg.out or ".")
    out.mkdir(parents=True, exist_ok=True)
    features = datasets.Features(
        {c: datasets.Value("float64" if c == "answer" else "string") for c in COLUMNS}
    )
    dataset = datasets.DatasetDict(
        {
            name: datasets.Dataset.from_list(rows, features=features)
            for name, rows in result.rows.items()
        }
    )
    dataset.save_to_disk(str(out))
    for name, rows in result.rows.items():
        with (out / f"{name}.jsonl").open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    (out / "stats.json").write_text(json.dumps(result.stats, indent=2) + "\n", encoding="utf-8")
    save_config(replace(cfg, api_key="***" if cfg.api_key else None), out)


def summary(stats: dict[str, Any]) -> str:
    """A few lines for the terminal."""
    cov = stats["coverage_all_problems"]
    lines = [
        f"rows: {stats['rows']}  per thought: {stats['per_thought']}",
        "verified per problem (train + validation, originals): "
        + ", ".join(
            f"{t} {cov[t]['verified']}/{cov['problems']} ({100 * cov[t]['rate']:.1f}%)"
            for t in (*THOUGHTS, "all_three")
        ),
        f"drops: {stats['drops']}",
        "leak check: " + ("clean" if stats["leak_check"]["clean"] else "LEAK")
        + " " + json.dumps(stats["leak_check"]["sets"]),
        f"build time: {stats['seconds']} s",
    ]  # fmt: skip
    if stats["teacher_cost"]:
        lines.append(f"teacher: {json.dumps(stats['teacher_cost'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = resolve(load_config(BuildConfig, argv))
        if not cfg.progress:
            datasets.disable_progress_bars()
        result = build(cfg)
    except (ValueError, TeacherError) as err:  # bad settings or data: say what, lose nothing
        print(f"build_data: {err}", file=sys.stderr)
        return 2
    write(cfg, result)
    print(summary(result.stats))
    print(f"wrote {cfg.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
