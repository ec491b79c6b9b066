"""Numbers out of free text (chain-of-thought answers) and answer equality.

`extract_answer` reads the final answer of a chain of thought, in this order of preference:

1. the last "The answer is X" / "Answer: X" phrase,
2. the last GSM8K-style "#### X" marker,
3. the last ``\\boxed{X}``,
4. the last number anywhere in the text.

X may carry a currency sign, thousands separators, a decimal part, a percent sign (``18%`` reads
as 18, the way GSM8K states percentages), a fraction (``3/4``) or a mixed number (``2 1/2``).
"""

from __future__ import annotations

import math
import re

# A number as people write it: -$1,234.5 | 3/4 | 2 1/2 | .5 | 18%
_NUMBER_RE = re.compile(
    r"(?P<neg>-)?\s?\$?\s?"
    r"(?:(?P<whole>\d+)\s+(?=\d+/\d+))?"  # the whole part of a mixed number
    r"(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)?(?P<frac>\.\d+)?"
    r"(?:\s?/\s?(?P<den>\d+(?:\.\d+)?))?"
)
_ANSWER_PHRASE_RE = re.compile(r"(?:the\s+(?:final\s+)?answer\s+is|answer\s*[:=])\s*:?\s*", re.I)
_HASH_RE = re.compile(r"####\s*")
_BOXED_RE = re.compile(r"\\boxed\{\s*")
_ANY_NUMBER_RE = re.compile(
    r"-?\$?\s?(?:\d+\s+\d+/\d+|\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?(?:\s?/\s?\d+)?|\.\d+)"
)

#: Answers are equal when within this relative tolerance ...
REL_TOL = 1e-6
#: ... or this absolute tolerance (ToRA's MAWPS rounds repeating decimals to 10 places).
ABS_TOL = 1e-4


def parse_number(text: str) -> float | None:
    """Parse one number as people write it (see module docstring); None if it is not one."""
    text = text.strip().rstrip(".").rstrip("%").strip()
    m = _NUMBER_RE.fullmatch(text)
    if not m or not (m["int"] or m["frac"]):
        return None
    value = float((m["int"] or "0").replace(",", "") + (m["frac"] or ""))
    if m["den"] is not None:
        den = float(m["den"])
        if den == 0:
            return None
        value /= den
    if m["whole"]:
        value += float(m["whole"])
    if m["neg"]:
        value = -value
    return value if math.isfinite(value) else None


def _number_after(text: str, pattern: re.Pattern[str]) -> float | None:
    """The number right after the last match of `pattern`, if any."""
    for match in reversed(list(pattern.finditer(text))):
        following = _ANY_NUMBER_RE.match(text, match.end())
        if following:
            value = parse_number(following.group())
            if value is not None:
                return value
    return None


def extract_answer(text: str | None) -> float | None:
    """The final numeric answer stated in `text`, or None when it states none."""
    if not text:
        return None
    for pattern in (_ANSWER_PHRASE_RE, _HASH_RE, _BOXED_RE):
        value = _number_after(text, pattern)
        if value is not None:
            return value
    for match in reversed(list(_ANY_NUMBER_RE.finditer(text))):
        value = parse_number(match.group())
        if value is not None:
            return value
    return None


def same_answer(a: float | None, b: float | None) -> bool:
    """Whether two answers agree: both present and within REL_TOL or ABS_TOL of each other."""
    if a is None or b is None:
        return False
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)
