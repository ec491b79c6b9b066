"""Names for steps: the content words of the sentence around each calculation."""

from __future__ import annotations

import builtins
import keyword
import re

from training.teachers.steps import STOP_WORDS, Step

_CLAUSE_END = {"and", "so", "because", "which", "if", "but", "when", "since", "then", "while"}
_RESERVED = (
    set(keyword.kwlist)
    | set(dir(builtins))
    | {"ans", "pi", "floor", "ceil", "sqrt", "oo", "nan", "inf", "math", "sympy"}
)
_MAX_NAME_WORDS = 3


# ---------------------------------------------------------------- names


def _words(text: str) -> list[str]:
    return [
        w.lower().removesuffix("'s").strip("'") for w in re.findall(r"[A-Za-z][A-Za-z']*", text)
    ]


def _content(words: list[str]) -> list[str]:
    return [w for w in words if w not in STOP_WORDS and len(w) > 1 and w.isalpha()]


def _name_after(line: str, end: int) -> list[str]:
    """Content words right after a result: ``24 clips in May`` -> clips, may."""
    rest = re.split(r"[.,;:!?()=\d$]", line[end:], maxsplit=1)[0]
    words: list[str] = []
    for word in _words(rest):
        if word in _CLAUSE_END:
            break
        words.append(word)
    return _content(words)[:_MAX_NAME_WORDS]


def _name_before(line: str, start: int) -> list[str]:
    """Content words describing a calculation from the text before it."""
    before = line[:start]
    asked = re.search(r"how (?:many|much|long|far|old) ([A-Za-z' ]+)", before, re.I)
    if asked:
        return _content(_words(asked.group(1)))[:_MAX_NAME_WORDS]
    clause = re.split(r"[.;,:!?()=]", before.rstrip(" :=$"))[-1]
    return _content(_words(clause))[-_MAX_NAME_WORDS:]


def name_steps(lines: list[str], steps: list[Step], keep: list[int]) -> None:
    """Give each kept step a unique snake_case name taken from its sentence (the unknown: x).

    The words after the result come first (``24 clips in May``), then those before the
    calculation (``Betty's grandparents gave her``), then a numbered variant.
    """
    used: set[str] = {"x"}
    for n, i in enumerate(keep, start=1):
        step = steps[i]
        if step.rhs is not None:
            continue
        line = lines[step.line]
        candidates = [
            "_".join(words)
            for words in (_name_after(line, step.end), _name_before(line, step.start))
            if words
        ]
        candidates = [c + "_value" if c in _RESERVED else c for c in candidates] or [f"step{n}"]
        name = next((c for c in candidates if c not in used), None)
        k = 2
        while name is None:
            name = next((f"{c}_{k}" for c in candidates if f"{c}_{k}" not in used), None)
            k += 1
        used.add(name)
        step.name = name
