"""Fit the answer selector (``eotd.verifier``) on held-out predictions, and report what it gains.

    python -m training.fit_selector --config training/configs/selector.yaml   # the shipped one
    python -m training.fit_selector --predictions HELD_OUT.jsonl --report_on TEST.jsonl,... \\
        [--output models/selector.json] [--report_dir models/eval/selector]

Fits boosted decision stumps (``training.boosting``: an additive logistic model, one step function
per signal) on every candidate answer of the ``predictions`` files: its signals against whether it
is the gold answer. Refuses problems
that are evaluation questions (GSM8K test, SVAMP, ASDiv, MultiArith): the selector is fitted only
on problems the student never trained on and no test set holds, i.e. the data builder's held-out
validation slice and its number-changed variants (``training.heldout``). Reports, on the fitting
problems by grouped k-fold cross-validation and on each ``report_on`` file (never fitted on),
majority against the selector paired with the sign test, and what each signal contributes (refit
without it). ``cross_validate_also`` files are scored in the same folds without being fitted on,
to compare fitting sets (greedy thoughts only, or samples too) on the same problems. Writes the
selector, ``report.json``, ``report.md`` and the config to ``report_dir``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from eotd import same_answer
from eotd.verifier import SIGNALS, Evidence, Selector, candidates, rank
from training.boosting import BoostSettings, fit_stumps
from training.compare import sign_test
from training.config import load_config, save_config
from training.datasets import evaluation_questions, normalize_question
from training.rescore import load_predictions


@dataclass
class FitSelectorConfig:
    """Fit the answer selector on held-out predictions; report it against majority."""

    # training.evaluate's predictions_*.jsonl of held-out, non-test problems (fitted on)
    predictions: list[str] = field(
        default_factory=lambda: ["models/eval/heldout/predictions_heldout.jsonl"]
    )
    # predictions files to report on (test sets; never fitted on)
    report_on: list[str] = field(default_factory=list)
    # held-out predictions scored in cross-validation, on the same folds, but not fitted on (to
    # compare fitting sets: e.g. how a selector fitted on greedy thoughts does on samples)
    cross_validate_also: list[str] = field(default_factory=list)
    signals: list[str] = field(default_factory=lambda: list(SIGNALS))  # those used
    boosting: BoostSettings = field(default_factory=BoostSettings)  # how the stumps are fitted
    folds: int = 5  # cross-validation folds over the fitting problems
    seed: int = 0
    output: str = "models/selector.json"
    report_dir: str = "models/eval/selector"


@dataclass
class Problem:
    """One problem's candidates and what majority chose."""

    id: str
    question: str
    gold: float
    evidence: list[Evidence]
    majority: float | None


@dataclass
class Score:
    """Majority against the selector on the same problems."""

    problems: int
    majority: float  # accuracy, %
    verified: float
    oracle: float
    only_majority: int
    only_verified: int
    p_value: float


def read(path: str | Path) -> list[Problem]:
    """The problems of a predictions file, with candidates and the majority vote."""
    problems, solutions = load_predictions(Path(path), refresh=True)
    out = []
    for problem, solution in zip(problems, solutions, strict=True):  # read with majority votes
        found = candidates(solution.question, solution.thoughts)
        out.append(Problem(str(problem["id"]), solution.question, float(problem["answer"]), found,
                           solution.answer))  # fmt: skip
    return out


def refuse_test_questions(files: dict[str, list[Problem]]) -> None:
    """Raise when a fitting file holds an evaluation question."""
    held_out = evaluation_questions()
    for path, problems in files.items():
        leaked = [p.id for p in problems if normalize_question(p.question) in held_out]
        if leaked:
            raise ValueError(
                f"{path} holds {len(leaked)} evaluation questions (e.g. {leaked[0]}); fit the "
                "selector on held-out training problems only"
            )


def matrix(problems: Sequence[Problem], signals: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Signals (NaN where a candidate lacks one) and labels of every candidate."""
    rows = [[e.signals.get(s, np.nan) for s in signals] for p in problems for e in p.evidence]
    labels = [same_answer(e.answer, p.gold) for p in problems for e in p.evidence]
    return np.array(rows, dtype=float).reshape(-1, len(signals)), np.array(labels, dtype=float)


def fit(problems: Sequence[Problem], signals: Sequence[str], settings: BoostSettings) -> Selector:
    """Boosted stumps over the signals (:func:`training.boosting.fit_stumps`), as a selector."""
    x, y = matrix(problems, signals)
    if not len(y) or y.min() == y.max():
        raise ValueError("the fitting problems need both right and wrong candidate answers")
    lacking = [s for s, missing in zip(signals, np.isnan(x).any(axis=0), strict=True) if missing]
    if lacking:
        raise ValueError(f"some fitting candidates lack {', '.join(lacking)}; leave it out")
    model = fit_stumps(x, y, settings)
    return Selector(
        list(signals), [t.tolist() for t in model.thresholds],
        [[round(float(v), 6) for v in steps] for steps in model.values], round(model.bias, 6),
    )  # fmt: skip


def picks(problems: Sequence[Problem], selector: Selector) -> list[float | None]:
    """The selector's answer for each problem."""
    return [(ranked[0][1].answer if (ranked := rank(p.evidence, selector)) else None)
            for p in problems]  # fmt: skip


def paired(problems: Sequence[Problem], chosen: Sequence[float | None]) -> Score:
    """Majority against ``chosen`` answers, paired per problem."""
    maj = [same_answer(p.majority, p.gold) for p in problems]
    ver = [same_answer(a, p.gold) for a, p in zip(chosen, problems, strict=True)]
    oracle = [any(same_answer(e.answer, p.gold) for e in p.evidence) for p in problems]
    only_m = sum(m and not v for m, v in zip(maj, ver, strict=True))
    only_v = sum(v and not m for m, v in zip(maj, ver, strict=True))
    n = max(len(problems), 1)
    return Score(
        len(problems), round(100 * sum(maj) / n, 2), round(100 * sum(ver) / n, 2),
        round(100 * sum(oracle) / n, 2), only_m, only_v, round(sign_test(only_m, only_v), 4),
    )  # fmt: skip


def origin(problem_id: str) -> str:
    """The problem a variant was made from (``training.augment`` names them ``ID-augN``)."""
    return re.sub(r"-aug\d+$", "", problem_id)


def fold_numbers(problems: Sequence[Problem], folds: int, seed: int) -> np.ndarray:
    """Each problem's cross-validation fold, drawn by original problem (:func:`origin`): greedy
    and sampled predictions of one problem, and its number-changed variants, share a fold."""
    ids = sorted({origin(p.id) for p in problems})
    order = np.random.default_rng(seed).permutation(len(ids))
    fold_by_id = {ids[i]: k % folds for k, i in enumerate(order)}
    return np.array([fold_by_id[origin(p.id)] for p in problems])


def cross_validated_picks(
    problems: Sequence[Problem],
    signals: Sequence[str],
    settings: BoostSettings,
    folds: int,
    seed: int,
    fitted: int | None = None,
) -> list[float | None]:
    """Each problem's answer from a selector fitted on the other folds (:func:`fold_numbers`),
    on their first ``fitted`` problems only where given (the rest are only scored)."""
    fold_of = fold_numbers(problems, folds, seed)
    chosen: list[float | None] = [None] * len(problems)
    for k in range(folds):
        train = [p for i, p in enumerate(problems[:fitted]) if fold_of[i] != k]
        selector = fit(train, signals, settings)
        held = [i for i in range(len(problems)) if fold_of[i] == k]
        for i, answer in zip(held, picks([problems[i] for i in held], selector), strict=True):
            chosen[i] = answer
    return chosen


def cross_validate(
    problems: Sequence[Problem],
    signals: Sequence[str],
    settings: BoostSettings,
    folds: int,
    seed: int,
) -> Score:
    """Majority against the cross-validated selector (:func:`cross_validated_picks`)."""
    return paired(problems, cross_validated_picks(problems, signals, settings, folds, seed))


def report_name(path: str | Path) -> str:
    """A report's name: its folder and set, e.g. "student/gsm8k"."""
    path = Path(path)
    return f"{path.parent.name}/{path.stem.removeprefix('predictions_')}"


def available(problems: Sequence[Problem], signals: Sequence[str]) -> list[str]:
    """The signals every fitting candidate has (log-probabilities exist only in newer runs)."""
    return [s for s in signals if all(s in e.signals for p in problems for e in p.evidence)]


def run(cfg: FitSelectorConfig) -> dict:
    """Fit, cross-validate, ablate and report; return the report."""
    paths = cfg.predictions + cfg.cross_validate_also
    if len(set(paths)) < len(paths):
        raise ValueError("name each predictions file once: fitted on, or only cross-validated")
    files = {path: read(path) for path in paths}
    refuse_test_questions(files)
    fitting = [p for path in cfg.predictions for p in files[path]]
    scored = fitting + [p for path in cfg.cross_validate_also for p in files[path]]
    signals = available(fitting, cfg.signals)
    skipped = [s for s in cfg.signals if s not in signals]
    selector = fit(fitting, signals, cfg.boosting)
    reports = {report_name(path): read(path) for path in cfg.report_on}
    cv_names = {"cross-validated (fitting problems)": range(len(fitting))}
    if len(files) > 1:  # greedy and sampled held-out files are told apart too
        start = 0
        for path, problems in files.items():
            cv_names[f"cross-validated ({report_name(path)})"] = range(start, start + len(problems))
            start += len(problems)
    tables: dict[str, dict] = {name: {} for name in cv_names}
    tables.update({name: {} for name in reports})
    for dropped in ["", *signals]:
        used = [s for s in signals if s != dropped]
        label = f"without {dropped}" if dropped else "all signals"
        chosen = cross_validated_picks(
            scored, used, cfg.boosting, cfg.folds, cfg.seed, len(fitting)
        )
        for name, rows in cv_names.items():
            cv = paired([scored[i] for i in rows], [chosen[i] for i in rows])
            tables[name][label] = cv.__dict__
        sel = selector if not dropped else fit(fitting, used, cfg.boosting)
        for name, problems in reports.items():
            tables[name][label] = paired(problems, picks(problems, sel)).__dict__
    selector.fitted_on = {
        "predictions": list(cfg.predictions), "problems": len(fitting),
        "candidates": sum(len(p.evidence) for p in fitting), "boosting": asdict(cfg.boosting),
        "skipped_signals": skipped,
    }  # fmt: skip
    selector.save(cfg.output)
    out = Path(cfg.report_dir)
    save_config(cfg, out, name="fit_selector_config.yaml")
    report = {"selector": selector.to_dict(), "tables": tables}
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(markdown(selector, tables), encoding="utf-8")
    return report


def markdown(selector: Selector, tables: dict[str, dict]) -> str:
    """What each signal does in the selector, and the paired tables, as Markdown."""
    lines = ["### What each signal adds to an answer's logit (step functions)", "",
             "| signal | steps | at its lowest value | at its highest value | range | what |",
             "|---|---:|---:|---:|---:|---|"]  # fmt: skip
    for s, steps in zip(selector.signals, selector.values, strict=True):
        lines.append(f"| {s} | {len(steps) - 1} | {steps[0]:+.3f} | {steps[-1]:+.3f} | "
                     f"{max(steps) - min(steps):.3f} | {SIGNALS[s]} |")  # fmt: skip
    lines += ["", f"Bias {selector.bias:+.3f}; thresholds and values in the selector file.", ""]
    if selector.fitted_on.get("skipped_signals"):
        lines += [f"Not used (missing in the fitting predictions): "
                  f"{', '.join(selector.fitted_on['skipped_signals'])}.", ""]  # fmt: skip
    for name, rows in tables.items():
        lines += [f"### {name}", "", "| selector | n | majority | verified | oracle | only "
                  "majority | only verified | sign test p |", "|---|---:|---:|---:|---:|---:|---:|"
                  "---:|"]  # fmt: skip
        for label, r in rows.items():
            lines.append(
                f"| {label} | {r['problems']} | {r['majority']:.2f} | {r['verified']:.2f} | "
                f"{r['oracle']:.2f} | {r['only_majority']} | {r['only_verified']} | "
                f"{r['p_value']:.3g} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(FitSelectorConfig, argv)
    report = run(cfg)
    print(markdown(Selector(**report["selector"]), report["tables"]))


if __name__ == "__main__":
    main()
