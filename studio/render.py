"""HTML for the app's panels. Every user- or model-made string goes through ``html.escape``."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from db.store.corrections import TYPED_IN
from eotd.verifier import answer_of
from studio.solving import WRITING, SolveState, ThoughtView, Verdict

NAMES = {"cot": "CoT", "pot": "PoT", "eot": "EoT"}

CSS = """
.badge {display:inline-block; padding:2px 10px; border-radius:999px; font-weight:600;
        font-size:0.9em}
.badge.ok {background:#d1fae5; color:#065f46}
.badge.bad {background:#fee2e2; color:#991b1b}
.badge.wait {background:#e5e7eb; color:#374151}
.panel {font-size:0.95em}
.panel table {border-collapse:collapse; margin:4px 0}
.panel td, .panel th {border:1px solid #d1d5db; padding:2px 8px; text-align:left}
.panel pre {white-space:pre-wrap; margin:4px 0; padding:6px; background:#f3f4f6;
            border-radius:4px; color:#111827}
.eq-line.err {background:#fee2e2}
.eq-no {color:#6b7280; user-select:none; padding-right:8px}
.vote {font-size:1.05em; padding:8px; border-radius:6px; background:#eef2ff; color:#1e1b4b}
.right {color:#065f46; font-weight:700}
.wrong {color:#991b1b; font-weight:700}
.msg {padding:6px 10px; border-radius:6px}
.msg.info {background:#e0f2fe; color:#0c4a6e}
.msg.ok {background:#d1fae5; color:#065f46}
.msg.error {background:#fee2e2; color:#991b1b}
.diff .add {background:#d1fae5; color:#065f46}
.diff .del {background:#fee2e2; color:#991b1b}
.diff .same {color:#374151}
.keys kbd {border:1px solid #9ca3af; border-radius:3px; padding:0 4px; font-size:0.85em}
"""


def num(value: float | None) -> str:
    """A number as people write it: 18, 2.5, 0.333333; a dash when there is none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def message(text: str, kind: str = "info") -> str:
    """A one-line notice (``kind``: info, ok, error)."""
    return f'<div class="msg {escape(kind)}">{escape(text)}</div>'


def badge(view: ThoughtView | None) -> str:
    """A status pill: solved (with the answer), the failure and why, or still writing."""
    if view is None or view.status == WRITING:
        return '<span class="badge wait">writing…</span>'
    if view.ok:
        return f'<span class="badge ok">{escape(view.status)}: {escape(num(view.answer))}</span>'
    label = view.status.replace("_", " ")
    if not view.finished:
        label += " (ran out of tokens)"
    return f'<span class="badge bad" title="{escape(view.error or label)}">{escape(label)}</span>'


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _equations(view: ThoughtView) -> str:
    lines = []
    for number, line in enumerate(view.text.splitlines(), start=1):
        css = "eq-line err" if view.line == number else "eq-line"
        lines.append(f'<div class="{css}"><span class="eq-no">{number}</span>{escape(line)}</div>')
    return f"<pre>{''.join(lines)}</pre>"


def _error(view: ThoughtView) -> str:
    if view.ok or not view.error:
        return ""
    said = view.line and f"line {view.line}" in view.error
    where = f" (line {view.line})" if view.line and not said else ""
    return (
        f'<p class="wrong">{escape(view.status.replace("_", " "))}{where}: {escape(view.error)}</p>'
    )


def thought_panel(view: ThoughtView | None) -> str:
    """What the engine did with one thought: EoT's equations and solved variables, PoT's output
    and ``ans``, CoT's extracted answer."""
    if view is None or view.status == WRITING:
        return '<div class="panel"><em>The student is writing this thought…</em></div>'
    parts = [f"<div>{badge(view)}</div>"]
    if view.thought == "eot":
        parts.append(_equations(view))
        if view.values:
            rows = sorted(view.values.items())
            parts.append(_table(["variable", "value"], [(k, num(v)) for k, v in rows]))
    elif view.thought == "pot":
        parts.append("<div>printed:</div>")
        parts.append(f"<pre>{escape(view.stdout) or '(nothing)'}</pre>")
        parts.append(f"<div><code>ans</code> = <b>{escape(num(view.answer))}</b></div>")
    else:
        parts.append(f"<div>extracted answer: <b>{escape(num(view.answer))}</b></div>")
        redone = answer_of(view)
        if redone != view.answer:
            parts.append(
                f'<div class="wrong">its arithmetic slips; redone it gives <b>{escape(num(redone))}'
                "</b> (what the selector reads)</div>"
            )
    parts.append(_error(view))
    return f'<div class="panel">{"".join(parts)}</div>'


def gold_note(gold: float | None, source: str | None, source_id: str | None) -> str:
    """Where an example comes from and its known answer."""
    if gold is None:
        return message("A new question: no gold answer is known.", "info")
    where = f"{source} {source_id}" if source_id else (source or "the store")
    return message(f"Example from {where}; gold answer {num(gold)}.", "info")


def vote_panel(verdict: Verdict | None, gold: float | None = None) -> str:
    """The ensemble's answer, who agrees, the strategy and right/wrong against gold."""
    if verdict is None:
        return '<div class="vote">The vote comes when all three thoughts are done…</div>'
    agree = ", ".join(NAMES.get(s, s) for s in verdict.supporters) or "no thought"
    if verdict.correct is None:
        judged = ""
    elif verdict.correct:
        judged = f' <span class="right">right (gold {escape(num(gold))})</span>'
    else:
        judged = f' <span class="wrong">wrong (gold {escape(num(gold))})</span>'
    sure = "" if verdict.confidence is None else f" · {verdict.confidence:.0%} sure"
    return (
        f'<div class="vote">Answer <b>{escape(num(verdict.answer))}</b>{judged}<br>'
        f"agreeing: {escape(agree)} · strategy: {escape(verdict.strategy)}{sure}<br>"
        f"<small>{escape(verdict.explanation)}</small></div>"
    )


def solve_summary(state: SolveState) -> str:
    """The question being corrected, its gold and the student's vote, for the Correct tab."""
    gold = state.problem.gold
    known = f" · gold {escape(num(gold))}" if gold is not None else ""
    answer = state.verdict.answer if state.verdict else None
    return (
        f'<div class="panel"><b>Problem #{state.problem_id}</b>{known} · student answered '
        f"{escape(num(answer))}<pre>{escape(state.problem.question)}</pre></div>"
    )


def diff_html(original: str | None, corrected: str) -> str:
    """A line diff of the original and corrected text: removed lines red, added green."""
    rows = []
    for line in difflib.ndiff((original or "").splitlines(), corrected.splitlines()):
        tag, text = line[:2], line[2:]
        if tag == "? ":
            continue
        css = {"+ ": "add", "- ": "del"}.get(tag, "same")
        rows.append(f'<div class="{css}">{escape(tag + text)}</div>')
    return f'<pre class="diff">{"".join(rows) or "(empty)"}</pre>'


def correction_card(correction: Any, reviews: Sequence[Any], position: str = "") -> str:
    """One correction for review: question, gold, diff, solver results before and after, and its
    review history."""
    c = correction
    problem = c.problem
    gold = f"gold {num(problem.gold_answer)}" if problem.gold_answer is not None else "gold unknown"
    match = {True: "matches gold", False: "differs from gold", None: ""}[c.matches_gold]
    before = (
        f"{c.before_status}: {num(c.before_answer)}"
        + (f" ({c.before_error})" if c.before_error else "")
        if c.before_status
        else "not solved before"
    )
    after = f"{c.after_status}: {num(c.after_answer)}" + (
        f" ({c.after_error})" if c.after_error else ""
    )
    history = "".join(
        f"<li>{escape(r.decision)} by {escape(r.reviewer)} at {r.created_at:%Y-%m-%d %H:%M}"
        + (f": {escape(r.note)}" if r.note else "")
        + "</li>"
        for r in reviews
    )
    return (
        f'<div class="panel"><b>Correction #{c.id}</b> {escape(position)} · '
        f"{escape(NAMES.get(c.thought, c.thought))} by {escape(c.annotator)} · "
        f"status <b>{escape(c.status)}</b> · dataset {escape(problem.source or TYPED_IN)} · "
        f"{escape(gold)}<pre>{escape(problem.question)}</pre>"
        f"{diff_html(c.original_text, c.corrected_text)}"
        f"<div>solver before: {escape(before)}</div>"
        f"<div>solver after: <b>{escape(after)}</b> {escape(match)}</div>"
        + (f"<ul>{history}</ul>" if history else "")
        + "</div>"
    )


def conflicts_html(conflicts: Sequence[Any]) -> str:
    """Problems whose annotators' corrections solve to different answers."""
    if not conflicts:
        return message("No conflicts between annotators.", "ok")
    rows = [
        (
            f"#{c.problem_id}",
            c.question[:120],
            num(c.gold_answer),
            ", ".join(num(a) for a in c.answers),
            "; ".join(
                f"#{x.id} {x.annotator}: {num(x.after_answer)} ({x.status})" for x in c.corrections
            ),
        )
        for c in conflicts
    ]
    return _table(["problem", "question", "gold", "answers", "corrections"], rows)


def stats_html(stats: Any) -> str:
    """The store's counts."""
    rows = [
        ("problems", stats.problems),
        ("generations", stats.generations),
        ("corrections", stats.corrections),
        *((f"  {k}", v) for k, v in stats.by_status.items()),
        ("unsolved corrections", stats.unsolved),
        ("corrections matching gold", stats.matches_gold),
        ("annotators", stats.annotators),
        ("conflicts", stats.conflicts),
        ("approved, not yet trained on", stats.approved_unused),
        ("exports", stats.exports),
        ("model versions", stats.model_versions),
        ("promoted model", stats.promoted or "none"),
    ]
    return f'<div class="panel">{_table(["what", "count"], rows)}</div>'


def metrics_html(name: str, details: Sequence[tuple[str, str]], accuracy: Sequence[dict]) -> str:
    """A model: where it comes from and its accuracy per dataset, thought and vote."""
    info = _table(["", ""], details)
    if not accuracy:
        return f'<div class="panel"><b>{escape(name)}</b>{info}<p>No evaluation metrics.</p></div>'
    columns = list(dict.fromkeys(k for row in accuracy for k in row))
    rows = [[row.get(c, "") for c in columns] for row in accuracy]
    return f'<div class="panel"><b>{escape(name)}</b>{info}{_table(columns, rows)}</div>'


KEYS_HELP = (
    '<div class="keys">Keys (outside text boxes): <kbd>a</kbd> approve · <kbd>r</kbd> reject · '
    "<kbd>j</kbd>/<kbd>→</kbd> next · <kbd>k</kbd>/<kbd>←</kbd> previous</div>"
)
