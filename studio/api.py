"""The app's named API endpoints (``solve``, ``check_equations``, ``save_correction``,
``review_correction``, ``export_corrections``): each resolves the signed-in user and lets
:class:`studio.handlers.Studio` check the role."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from studio.handlers import Studio
from studio.user_errors import user_errors

SOLVES = 32  # solves let in at once; the batcher serializes and batches their model work
ENGINE_CONCURRENCY = 4  # live re-solves at once (each is a short sandboxed engine call)
# Saves run one at a time: a flood of endless programs holds at most one sandbox worker (for its
# timeout), so the live re-solves of everyone else keep the other.
SAVES = {"concurrency_id": "save", "concurrency_limit": 1}


def named_endpoints(studio: Studio) -> None:
    """The named API endpoints (JSON in, JSON out; the export is a file)."""

    @user_errors
    def solve(question: str, request: gr.Request) -> Iterator[dict]:
        """Solve a math word problem with CoT, PoT and EoT and vote. Streams the solve's state
        (``SolveState.to_dict``) as it changes: a thought being written has status "writing"
        and its text so far, a finished one its executed result; the last state has the vote
        and ``done`` true."""
        for state in studio.solve(studio.actor(request), question):
            yield state.to_dict()

    @user_errors
    def check_equations(equations: str, request: gr.Request) -> dict:
        """Solve a system of equations: status, answer, solved variables, or the error and
        its line."""
        return studio.check(studio.actor(request), "eot", equations).to_dict()

    @user_errors
    def save_correction(
        problem_id: int,
        thought: str,
        corrected_text: str,
        generation_id: int | None = None,
        allow_unsolved: bool = False,
        request: gr.Request = None,  # type: ignore[assignment]  # gradio fills it in
    ) -> dict:
        """Save a corrected thought (re-solved first) as a pending correction by the signed-in
        user (annotators and up)."""
        c = studio.save_correction(
            studio.actor(request), int(problem_id), thought, corrected_text,
            None if generation_id is None else int(generation_id), allow_unsolved,
        )  # fmt: skip
        return {
            "correction_id": c.id,
            "status": c.status,
            "answer": c.after_answer,
            "solver_status": c.after_status,
            "matches_gold": c.matches_gold,
            "unsolved": c.unsolved,
        }

    @user_errors
    def review_correction(
        correction_id: int,
        decision: str,
        note: str = "",
        request: gr.Request = None,  # type: ignore[assignment]  # gradio fills it in
    ) -> dict:
        """Approve or reject a correction as the signed-in reviewer: decision "approve" or
        "reject" ("pending" re-opens a rejected one, with a note)."""
        review = studio.review(studio.actor(request), int(correction_id), decision, note or None)
        return {
            "correction_id": review.correction_id,
            "decision": review.decision,
            "reviewer": review.reviewer,
            "note": review.note,
        }

    @user_errors
    def export_corrections(request: gr.Request) -> gr.FileData:
        """Export every approved correction as a zip (datasets folder, JSONL, Parquet, card);
        admins only."""
        path, _ = studio.export(studio.actor(request))
        return gr.FileData(path=str(path))

    limits: dict[Callable, dict[str, Any]] = {
        solve: {"concurrency_id": "solve", "concurrency_limit": SOLVES},
        check_equations: {"concurrency_id": "engine", "concurrency_limit": ENGINE_CONCURRENCY},
        save_correction: SAVES,
    }
    for fn in (solve, check_equations, save_correction, review_correction, export_corrections):
        gr.api(fn, api_name=fn.__name__, **limits.get(fn, {}))
