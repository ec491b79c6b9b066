"""The Gradio Blocks: Solve, Correct, Review & data (``studio.review_tab``), Active learning and
Model tabs, plus the named API endpoints (``studio.api``). Every handler is a thin adapter over
:class:`studio.handlers.Studio`:
it resolves the acting user from the request's session and passes it on; the ``Studio`` checks the
role. Controls a role may not use are hidden, but the server check is the guard.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr
import pandas as pd

from db import users as accounts
from eotd.prompts import THOUGHTS
from studio import render
from studio.active import COLUMNS as RANK_COLUMNS
from studio.active import MAX_POOL_BYTES
from studio.api import ENGINE_CONCURRENCY, SAVES, SOLVES, named_endpoints
from studio.handlers import MAX_RANK, Studio, accuracy_rows
from studio.identity import Mode
from studio.review_tab import review_tab_contents
from studio.solving import InputError, SolveState
from studio.user_errors import said, user_errors

EDIT_ORDER = ("eot", "pot", "cot")
MODEL = "student"  # concurrency group of ranking and model switches (one at a time)

KEYS_JS = """
<script>
document.addEventListener('keydown', (event) => {
  const target = event.target;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (target && (target.isContentEditable ||
      ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName))) return;
  const keys = {a: 'approve-btn', r: 'reject-btn', j: 'next-btn', ArrowRight: 'next-btn',
                k: 'prev-btn', ArrowLeft: 'prev-btn', n: 'annotate-next-btn'};
  const id = keys[event.key];
  const button = id && document.getElementById(id);
  if (button && button.offsetParent !== null) {
    event.preventDefault();
    button.click();
  }
});
</script>
"""


def _saved(correction: Any) -> str:
    gold = {True: ", matches gold", False: ", differs from gold", None: ""}[correction.matches_gold]
    flag = " (kept unsolved)" if correction.unsolved else ""
    return (
        f"Saved correction #{correction.id}{flag}: answer {render.num(correction.after_answer)}"
        f"{gold}. It waits for review."
    )


def _correct_tab_values(state: SolveState | None) -> list:
    """Summary and the three editors (EoT, PoT, CoT) pre-filled with the student's thoughts."""
    if state is None:
        return [render.message("Solve a question first.", "info"), "", "", ""]
    texts = [state.thoughts[t].text if t in state.thoughts else "" for t in EDIT_ORDER]
    return [render.solve_summary(state), *texts]


def _solve_values(state: SolveState) -> list:
    problem = state.problem
    values: list[Any] = [render.gold_note(problem.gold, problem.source, problem.source_id)]
    for thought in THOUGHTS:
        view = state.thoughts.get(thought)
        values += [view.text if view else "", render.thought_panel(view)]
    values += [render.vote_panel(state.verdict, problem.gold), state]
    return values + _correct_tab_values(state)


def build_app(studio: Studio) -> gr.Blocks:
    """The whole app over ``studio``."""
    with gr.Blocks(title="EoTD Studio") as demo:
        gr.Markdown(
            "# EoTD Studio\nA small student answers math word problems three ways: a chain of "
            "thought (CoT), a program (PoT) and a system of equations (EoT), then votes."
        )
        with gr.Row():
            who = gr.HTML(elem_id="who")
            if studio.access.mode is Mode.OAUTH:
                gr.LoginButton()
        solve_state = gr.State(None)
        gated: dict[str, list[gr.components.Component]] = {}  # action -> controls it needs
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab("Solve", id="solve"):
                question, solve_btn, solve_outputs = _solve_tab(studio)
            with gr.Tab("Correct", id="correct"):
                correct_outputs = _correct_tab(studio, solve_state, gated)
            with gr.Tab("Review & data", id="review") as review_tab:
                review_tab_contents(studio, review_tab, gated)
            with gr.Tab("Active learning", id="active"):
                _active_tab(studio, tabs, solve_state, correct_outputs, gated)
            with gr.Tab("Model", id="model") as model_tab:
                _model_tab(studio, [model_tab.select, demo.load], gated)

        controls = [(action, c) for action, cs in gated.items() for c in cs]

        def on_load(request: gr.Request) -> list:
            actor = studio.actor(request)
            shown = [gr.update(visible=actor.may(action)) for action, _ in controls]
            return [render.message(studio.access.notice(actor), "info"), *shown]

        demo.load(on_load, outputs=[who, *[c for _, c in controls]], api_visibility="private")

        @user_errors
        def on_solve(text: str, request: gr.Request) -> Iterator[list]:
            for state in studio.solve(studio.actor(request), text):
                yield _solve_values(state)

        gr.on(
            [solve_btn.click, question.submit],
            on_solve,
            inputs=question,
            outputs=[*solve_outputs, solve_state, *correct_outputs],
            concurrency_limit=SOLVES,
            concurrency_id="solve",
            api_visibility="private",
        )
        named_endpoints(studio)
    return demo


def _solve_tab(studio: Studio) -> tuple[gr.Textbox, gr.Button, list]:
    """The question, examples and the three thought columns with the vote."""
    with gr.Row():
        question = gr.Textbox(
            label="Question",
            lines=3,
            placeholder="A math word problem with numbers in it",
            elem_id="question",
            scale=5,
        )
        with gr.Column(scale=1, min_width=140):
            solve_btn = gr.Button("Solve", variant="primary", elem_id="solve-btn")
            random_btn = gr.Button("Random example", elem_id="random-btn")
    gr.Examples(
        [[q] for q in studio.eval_sets.examples(2)],
        inputs=[question],
        label="Examples from the evaluation sets (gold answers known)",
    )
    outputs: list[Any] = [gr.HTML(elem_id="gold")]
    with gr.Row(equal_height=False):
        for thought in THOUGHTS:
            with gr.Column():
                gr.Markdown(f"### {render.NAMES[thought]}")
                if thought == "pot":
                    raw = gr.Code(language="python", label="program", elem_id=f"raw-{thought}")
                else:
                    raw = gr.Textbox(label="written", lines=8, elem_id=f"raw-{thought}")
                panel = gr.HTML(render.thought_panel(None), elem_id=f"panel-{thought}")
                outputs += [raw, panel]
    outputs.append(gr.HTML(render.vote_panel(None), elem_id="vote"))
    random_btn.click(
        lambda: studio.eval_sets.random_question(), outputs=question, api_visibility="private"
    )
    return question, solve_btn, outputs


def _correct_tab(
    studio: Studio, solve_state: gr.State, gated: dict[str, list[gr.components.Component]]
) -> list:
    """Editors for the student's thoughts, each re-solved live; returns the components a solve
    fills (summary, then the EoT, PoT and CoT editors)."""
    summary = gr.HTML(render.message("Solve a question first.", "info"), elem_id="summary")
    allow_unsolved = gr.Checkbox(label="Keep a correction that does not solve (flagged for review)")
    editors = []
    for thought in EDIT_ORDER:
        with gr.Group():
            gr.Markdown(f"### {render.NAMES[thought]}")
            with gr.Row():
                if thought == "pot":
                    editor = gr.Code(
                        language="python",
                        interactive=True,
                        label="program",
                        elem_id=f"edit-{thought}",
                    )
                else:
                    editor = gr.Textbox(
                        label="edit, and it re-solves as you type",
                        lines=8,
                        interactive=True,
                        elem_id=f"edit-{thought}",
                    )
                check_html = gr.HTML(elem_id=f"check-{thought}")
            with gr.Row():
                save_btn = gr.Button(
                    "Save correction", variant="primary", elem_id=f"save-{thought}"
                )
                accept_btn = gr.Button("Accept as is", elem_id=f"accept-{thought}")
            save_msg = gr.HTML(elem_id=f"msg-{thought}")
        editors.append(editor)
        gated.setdefault("save_correction", []).extend([save_btn, accept_btn])
        _wire_correct(
            studio, thought, editor, check_html, save_btn, accept_btn, save_msg,
            [solve_state, editor, allow_unsolved],
        )  # fmt: skip
    return [summary, *editors]


def _active_tab(
    studio: Studio,
    tabs: gr.Tabs,
    solve_state: gr.State,
    correct_outputs: list,
    gated: dict[str, list[gr.components.Component]],
) -> None:
    """Rank a pool by the student's uncertainty (admins); one key opens the next problem in
    Correct."""
    ranked_state = gr.State([])
    gr.Markdown(
        "The student answers a pool in one batch; problems where its thoughts fail, disagree, or "
        "miss the gold answer come first. Press <kbd>n</kbd> (or the button) to correct the next."
    )
    with gr.Row():
        pool = gr.Dropdown(
            [*studio.eval_sets.names, "upload"],
            value=(studio.eval_sets.names or ["upload"])[0],
            label="pool",
        )
        pool_size = gr.Slider(1, MAX_RANK, value=8, step=1, label="problems to rank")
        upload = gr.File(
            label="or upload JSONL/CSV (question, answer)",
            file_types=[".jsonl", ".csv"],
            type="filepath",
        )
    with gr.Row():
        rank_btn = gr.Button("Rank", variant="primary", elem_id="rank-btn")
        next_btn = gr.Button("Annotate next (n)", elem_id="annotate-next-btn")
    rank_msg = gr.HTML(elem_id="rank-msg")
    gated["rank"] = [rank_btn, upload]
    rank_table = gr.Dataframe(headers=RANK_COLUMNS, interactive=False, elem_id="ranked")

    def table(ranked: list) -> pd.DataFrame:
        return pd.DataFrame([r.row(i + 1) for i, r in enumerate(ranked)], columns=RANK_COLUMNS)

    @user_errors
    def on_rank(source: str, n: float, uploaded: str | None, request: gr.Request) -> tuple:
        actor = studio.actor(request)
        if source == "upload" and not uploaded:
            raise InputError("Upload a JSONL or CSV file of problems first.")
        ranked = studio.rank(actor, source, int(n), uploaded if source == "upload" else None)
        note = render.message(f"Ranked {len(ranked)} problems; the most unsure is first.", "ok")
        return ranked, table(ranked), note

    rank_btn.click(
        on_rank,
        [pool, pool_size, upload],
        [ranked_state, rank_table, rank_msg],
        concurrency_limit=1,
        concurrency_id=MODEL,
        api_visibility="private",
    )

    def annotate_next(ranked: list) -> list:
        if not ranked:
            note = render.message("The queue is empty: rank a pool first.", "info")
            return [gr.Tabs(), ranked, gr.skip(), note, gr.skip(), *[gr.skip()] * 4]
        head, rest = ranked[0], ranked[1:]
        note = render.message(f"Correcting problem #{head.state.problem_id}.", "info")
        return [gr.Tabs(selected="correct"), rest, table(rest), note, head.state,
                *_correct_tab_values(head.state)]  # fmt: skip

    next_btn.click(
        annotate_next,
        ranked_state,
        [tabs, ranked_state, rank_table, rank_msg, solve_state, *correct_outputs],
        api_visibility="private",
    )


def _model_tab(
    studio: Studio, shown: list, gated: dict[str, list[gr.components.Component]]
) -> None:
    """The served model and its metrics; switch to or promote a registered version (admins)."""
    model_html = gr.HTML(elem_id="model-info")
    with gr.Row():
        versions = gr.Dropdown([], label="registered model versions")
        switch_btn = gr.Button("Serve this version", elem_id="switch-btn")
        promote_btn = gr.Button("Promote (load at start)", elem_id="promote-btn")
    model_msg = gr.HTML(elem_id="model-msg")
    gated["serve_model"] = [switch_btn, promote_btn]

    def model_view() -> list:
        info = studio.model_info()
        choices = [(f"#{v.id} {v.name}", v.id) for v in studio.store.model_versions()]
        current = info.version.id if info.version else None
        return [_model_html(studio), gr.Dropdown(choices=choices, value=current)]

    gr.on(shown, model_view, outputs=[model_html, versions], api_visibility="private")

    def on_switch(version_id: int | None, request: gr.Request) -> list:
        actor = studio.actor(request)
        if version_id is None:
            return [gr.skip(), render.message("Choose a model version first.", "error")]
        info = studio.switch_model(actor, int(version_id))
        return [_model_html(studio), render.message(f"Now serving {info.name}.", "ok")]

    switch_btn.click(
        user_errors(on_switch),
        versions,
        [model_html, model_msg],
        concurrency_limit=1,
        concurrency_id=MODEL,
        api_visibility="private",
    )

    def on_promote(version_id: int | None, request: gr.Request) -> str:
        actor = studio.actor(request)
        if version_id is None:
            return render.message("Choose a model version first.", "error")
        version = studio.promote(actor, int(version_id))
        return render.message(f"{version.name} is promoted: the app loads it at start.", "ok")

    promote_btn.click(user_errors(on_promote), versions, model_msg, api_visibility="private")


def _wire_correct(
    studio: Studio,
    thought: str,
    editor: gr.components.Component,
    check_html: gr.HTML,
    save_btn: gr.Button,
    accept_btn: gr.Button,
    save_msg: gr.HTML,
    inputs: list,
) -> None:
    """Live re-solve, save and accept for one thought's editor."""

    def check(text: str, request: gr.Request) -> str:
        if not (text or "").strip():
            return render.message("Nothing to check yet.", "info")
        try:
            return render.thought_panel(studio.check(studio.actor(request), thought, text))
        except Exception as exc:
            return render.message(said(exc), "error")

    editor.change(
        check,
        editor,
        check_html,
        trigger_mode="always_last",
        concurrency_limit=ENGINE_CONCURRENCY,
        concurrency_id="engine",
        api_visibility="private",
    )

    def saver(accept: bool) -> Callable:
        def save(state: SolveState | None, text: str, unsolved: bool, request: gr.Request) -> str:
            actor = studio.actor(request)
            try:
                correction = studio.correct(actor, state, thought, text, unsolved, accept=accept)
            except Exception as exc:
                return render.message(said(exc), "error")
            return render.message(_saved(correction), "ok")

        return save

    save_btn.click(saver(False), inputs, save_msg, api_visibility="private", **SAVES)
    accept_btn.click(saver(True), inputs, save_msg, api_visibility="private", **SAVES)


def _model_html(studio: Studio) -> str:
    info = studio.model_info()
    details = [
        (
            "version",
            f"#{info.version.id} {info.version.name}" if info.version else "not registered",
        ),
        ("base", info.base),
        ("adapter", info.adapter or "none"),
        ("engine", str(studio.student().engine.spec)),
    ]
    accuracy = accuracy_rows(info.version.metrics) if info.version else []
    return render.metrics_html(info.name, details, accuracy)


def launch_local(demo: gr.Blocks, studio: Studio) -> str:
    """Launch ``demo`` on 127.0.0.1 at a free port without blocking (tests, benchmarks); returns
    its URL. ``demo.close()`` stops it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _, url, _ = launch(
        demo,
        studio,
        prevent_thread_lock=True,
        server_name="127.0.0.1",
        server_port=port,
        quiet=True,
    )
    return url


def launch(demo: gr.Blocks, studio: Studio, **kwargs: Any) -> Any:
    """Queue and launch ``demo`` with the app's CSS and keyboard shortcuts; with accounts, behind
    Gradio's login page, checked against the store's accounts."""
    queue_size = kwargs.pop("max_queue", 64)
    demo.queue(max_size=queue_size, default_concurrency_limit=2)
    if studio.access.mode is Mode.ACCOUNTS:
        kwargs.setdefault("auth", lambda name, password: _signs_in(studio, name, password))
        kwargs.setdefault("auth_message", "Sign in with your EoTD Studio account.")
    return demo.launch(css=render.CSS, head=KEYS_JS, max_file_size=MAX_POOL_BYTES, **kwargs)


def _signs_in(studio: Studio, name: str, password: str) -> bool:
    return accounts.authenticate(studio.store, name, password) is not None
