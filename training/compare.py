"""Compare two evaluations on the problems they share: which change gained what, paired.

    python -m training.compare --a models/eval/student --b runs/eval_ct2 [--output_dir DIR]

Reads the ``predictions_{set}.jsonl`` files that both folders hold (``training.evaluate`` or
``training.rescore`` wrote them), joins them on problem id, and reports per thought and per vote
rule: accuracy of A and of B on the shared problems, how many only A or only B gets right (the
discordant pairs that decide whether a difference is more than noise) with the exact two-sided
sign-test p-value, and how often the two wrote the same answer. Writes ``comparison.json`` and
``comparison.md`` to ``output_dir`` (default: B's folder). Two ways of choosing on the same
predictions pair too: ``--a X --b X --vote majority --vote_b verified``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from math import comb
from pathlib import Path

from eotd import same_answer
from eotd.prompts import THOUGHTS
from eotd.verifier import Selector, choose, load_selector
from training.config import load_config, save_config
from training.evaluate import STRATEGIES
from training.rescore import load_predictions


@dataclass
class CompareConfig:
    """Compare the predictions of two evaluations, paired by problem id."""

    a: str = "models/eval/student"  # folder with predictions_{set}.jsonl
    b: str = "runs/eval"  # the other folder
    output_dir: str = ""  # where to write comparison.json/.md; default: b
    vote: str = "majority"  # A's way of choosing, compared besides the thoughts (evaluate's names)
    vote_b: str = ""  # B's way of choosing; "": the same as vote (e.g. majority vs verified)
    selector: str = ""  # the selector file for "verified"; "": models/selector.json


@dataclass
class Paired:
    """One thought (or vote) of A against B on the same problems."""

    name: str
    problems: int
    accuracy_a: float
    accuracy_b: float
    only_a: int  # problems A gets right and B wrong
    only_b: int
    p_value: float  # exact two-sided sign test on the discordant pairs
    same_answer: float  # % of problems where A and B give the same answer (both none counts)


def sign_test(only_a: int, only_b: int) -> float:
    """Exact two-sided binomial (sign) test of ``only_a`` against ``only_b`` at p = 1/2."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2**n
    return min(1.0, 2 * tail)


def _answers(
    path: Path, vote_rule: str, selector: Selector | None = None
) -> dict[str, tuple[float, dict[str, float | None]]]:
    """id -> (gold, {thought or way of choosing: answer}) of one predictions file."""
    problems, solutions = load_predictions(path, refresh=vote_rule == "verified")
    strategy, order = STRATEGIES[vote_rule]
    out = {}
    for problem, solution in zip(problems, solutions, strict=True):
        q, thoughts = solution.question, solution.thoughts
        # with k samples a thought's answer is its own vote, as in training.evaluate
        answers = {t: choose(q, thoughts, t).answer for t in THOUGHTS}
        answers[vote_rule] = choose(q, thoughts, strategy, order, selector=selector).answer
        out[problem["id"]] = (float(problem["answer"]), answers)
    return out


def pair(
    a: Path,
    b: Path,
    vote_rule: str = "majority",
    vote_b: str = "",
    selector: Selector | None = None,
) -> list[Paired]:
    """Compare two predictions files of the same set on their shared problem ids: each thought,
    and A's ``vote_rule`` against B's ``vote_b`` (default: the same rule)."""
    vote_b = vote_b or vote_rule
    left, right = _answers(a, vote_rule, selector), _answers(b, vote_b, selector)
    shared = [i for i in left if i in right]
    if not shared:
        raise ValueError(f"{a} and {b} share no problem ids")
    rows = []
    rule = vote_rule if vote_b == vote_rule else f"{vote_rule} / {vote_b}"
    for name, key_a, key_b in [*((t, t, t) for t in THOUGHTS), (rule, vote_rule, vote_b)]:
        right_a = right_b = only_a = only_b = same = 0
        for i in shared:
            gold, answers_a = left[i]
            _, answers_b = right[i]
            x, y = answers_a.get(key_a), answers_b.get(key_b)
            ok_a, ok_b = same_answer(x, gold), same_answer(y, gold)
            right_a, right_b = right_a + ok_a, right_b + ok_b
            only_a, only_b = only_a + (ok_a and not ok_b), only_b + (ok_b and not ok_a)
            same += (x is None and y is None) or same_answer(x, y)
        n = len(shared)
        rows.append(
            Paired(name, n, round(100 * right_a / n, 1), round(100 * right_b / n, 1), only_a,
                   only_b, round(sign_test(only_a, only_b), 3), round(100 * same / n, 1))
        )  # fmt: skip
    return rows


def compare(cfg: CompareConfig) -> dict[str, list[Paired]]:
    """Pair every predictions file that both folders hold; write and return the results."""
    for rule in (cfg.vote, cfg.vote_b or cfg.vote):
        if rule not in STRATEGIES:
            raise ValueError(f"unknown vote {rule!r}; use one of {', '.join(STRATEGIES)}")
    selector = load_selector(cfg.selector or None) if "verified" in (cfg.vote, cfg.vote_b) else None
    a, b = Path(cfg.a), Path(cfg.b)
    names = sorted(
        p.name for p in b.glob("predictions_*.jsonl") if (a / p.name).is_file()
    )  # fmt: skip
    if not names:
        raise FileNotFoundError(f"{a} and {b} hold no predictions file of the same set")
    results = {
        name.removeprefix("predictions_").removesuffix(".jsonl"): pair(
            a / name, b / name, cfg.vote, cfg.vote_b, selector
        )
        for name in names
    }
    out = Path(cfg.output_dir or b)
    save_config(cfg, out, name="compare_config.yaml")
    report = {
        "a": str(a),
        "b": str(b),
        "sets": {k: [asdict(r) for r in v] for k, v in results.items()},
    }
    (out / "comparison.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "comparison.md").write_text(markdown(cfg, results), encoding="utf-8")
    return results


def markdown(cfg: CompareConfig, results: dict[str, list[Paired]]) -> str:
    lines = [
        f"A: `{cfg.a}`, B: `{cfg.b}`, paired on shared problem ids.",
        "",
        "| set | n | answer | A % | B % | only A right | only B right | sign test p "
        "| same answer % |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rows in results.items():
        for r in rows:
            lines.append(
                f"| {name} | {r.problems} | {r.name} | {r.accuracy_a} | {r.accuracy_b} | "
                f"{r.only_a} | {r.only_b} | {r.p_value} | {r.same_answer} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(CompareConfig, argv)
    print(markdown(cfg, compare(cfg)))


if __name__ == "__main__":
    main()
