"""Prompt format shared by training and inference (Zhu et al. 2024, ETD/EoTD).

A student sees ``Question: {question}\\n{trigger}\\n`` and continues with one thought:
CoT prose, a PoT program or an EoT system of equations, ended by the tokenizer's eos.
"""

from __future__ import annotations

THOUGHTS: tuple[str, ...] = ("cot", "pot", "eot")

TRIGGERS: dict[str, str] = {
    "cot": "Let's think step by step.",
    "pot": "Let's break down the code step by step",
    "eot": "System of linear equations: (Do not simplify)",
}


def build_prompt(question: str, thought: str) -> str:
    """The student's prompt for ``question`` asking for one ``thought`` ("cot", "pot" or "eot")."""
    if thought not in TRIGGERS:
        raise ValueError(f"unknown thought {thought!r}; expected one of {', '.join(THOUGHTS)}")
    return f"Question: {question.strip()}\n{TRIGGERS[thought]}\n"
