"""The Review & data tab: the review queue with filters and keyboard shortcuts, conflicts,
export, statistics and (for admins) the audit log."""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr
import pandas as pd

from db import audit as audit_log
from db.store.corrections import TYPED_IN
from studio import render
from studio.handlers import Studio
from studio.queries import filter_choices
from studio.user_errors import said, user_errors

STATUSES = ["pending", "approved", "rejected", "withdrawn", "all"]
STATUS_COLORS = {"pending": "#9ca3af", "approved": "#10b981", "rejected": "#ef4444",
                 "withdrawn": "#6b7280"}  # fmt: skip
QUEUE_COLUMNS = ["id", "thought", "annotator", "status", "dataset", "answer", "gold", "question"]


def _queue_frame(corrections: list) -> pd.DataFrame:
    rows = [
        [
            c.id,
            c.thought,
            c.annotator,
            c.status,
            c.problem.source or TYPED_IN,
            render.num(c.after_answer),
            render.num(c.problem.gold_answer),
            c.problem.question[:100],
        ]
        for c in corrections
    ]
    return pd.DataFrame(rows, columns=QUEUE_COLUMNS)


def review_tab_contents(
    studio: Studio, review_tab: gr.Tab, gated: dict[str, list[gr.components.Component]]
) -> None:
    """The review queue with filters and keyboard shortcuts, conflicts, export, statistics and
    (for admins) the audit log."""
    review_ids, review_index = gr.State([]), gr.State(0)
    with gr.Row():
        status_f = gr.Dropdown(STATUSES, value="pending", label="status")
        annotator_f = gr.Dropdown(["all"], value="all", label="annotator")
        dataset_f = gr.Dropdown(["all"], value="all", label="dataset")
        refresh_btn = gr.Button("Refresh", elem_id="refresh-btn")
    queue_table = gr.Dataframe(
        headers=QUEUE_COLUMNS, interactive=False, elem_id="queue", max_height=260
    )
    card = gr.HTML(elem_id="review-card")
    note = gr.Textbox(label="Note (why; required to reverse a decision)", elem_id="note")
    with gr.Row():
        prev_btn = gr.Button("◀ Previous", elem_id="prev-btn")
        approve_btn = gr.Button("Approve", variant="primary", elem_id="approve-btn")
        reject_btn = gr.Button("Reject", variant="stop", elem_id="reject-btn")
        withdraw_btn = gr.Button("Withdraw (my own)", elem_id="withdraw-btn")
        next_btn = gr.Button("Next ▶", elem_id="next-btn")
    gr.HTML(render.KEYS_HELP)
    review_msg = gr.HTML(elem_id="review-msg")
    with gr.Accordion("Conflicts between annotators", open=False):
        conflicts_html = gr.HTML(elem_id="conflicts")
    with gr.Row():
        export_btn = gr.Button("Export approved corrections", elem_id="export-btn")
        export_file = gr.File(label="export (zip)", elem_id="export-file")
    export_msg = gr.HTML(elem_id="export-msg")
    with gr.Accordion("Audit log (admins)", open=False, visible=False) as audit_box:
        audit_btn = gr.Button("Show the latest changes", elem_id="audit-btn")
        audit_table = gr.Dataframe(headers=audit_log.COLUMNS, interactive=False, elem_id="audit")
    gated["review"] = [approve_btn, reject_btn]
    gated["withdraw"] = [
        withdraw_btn,
        note,
    ]  # annotators say why they withdraw; reviewers rank above
    gated["export"] = [export_btn, export_file]
    gated["view_audit"] = [audit_box]

    @user_errors
    def on_audit(request: gr.Request) -> pd.DataFrame:
        rows = studio.audit_rows(studio.actor(request))
        return pd.DataFrame(rows, columns=audit_log.COLUMNS)

    audit_btn.click(on_audit, outputs=audit_table, api_visibility="private")
    gr.Markdown("### Statistics")
    stats_html = gr.HTML(elem_id="stats")
    with gr.Row():
        status_plot = gr.BarPlot(
            x="status",
            y="count",
            color="status",
            color_map=STATUS_COLORS,
            title="Corrections by status",
        )
        daily_plot = gr.BarPlot(
            x="day", y="count", color="status", color_map=STATUS_COLORS, title="Corrections by day"
        )
    accuracy_plot = gr.BarPlot(
        x="thought",
        y="accuracy",
        color="model",
        title="Accuracy (%) per thought and vote, per model version",
    )

    def statistics() -> list:
        return [
            render.stats_html(studio.store.stats()),
            studio.status_frame(),
            studio.daily_frame(),
            studio.accuracy_frame(),
            render.conflicts_html(studio.store.conflicts()),
        ]

    stats_outputs = [stats_html, status_plot, daily_plot, accuracy_plot, conflicts_html]
    gr.on(
        [refresh_btn.click, review_tab.select],
        statistics,
        outputs=stats_outputs,
        api_visibility="private",
    )

    def show(ids: list[int], index: int) -> str:
        if not ids:
            return render.message("Nothing in this queue.", "info")
        index = max(0, min(index, len(ids) - 1))
        correction = studio.store.get_correction(ids[index])
        reviews = studio.store.reviews(ids[index])
        return render.correction_card(correction, reviews, f"({index + 1} of {len(ids)})")

    def refresh(status: str, who: str, dataset: str, index: int) -> list:
        corrections = studio.queue(status, who, dataset)
        ids = [c.id for c in corrections]
        index = max(0, min(index, len(ids) - 1))
        annotators, datasets = filter_choices(studio.store)
        return [
            ids,
            index,
            _queue_frame(corrections),
            show(ids, index),
            gr.Dropdown(choices=["all", *annotators], value=who),
            gr.Dropdown(choices=["all", *datasets], value=dataset),
        ]

    filters = [status_f, annotator_f, dataset_f]
    queue_outputs = [review_ids, review_index, queue_table, card, annotator_f, dataset_f]
    gr.on(
        [refresh_btn.click, review_tab.select, status_f.input, annotator_f.input, dataset_f.input],
        refresh,
        inputs=[*filters, review_index],
        outputs=queue_outputs,
        api_visibility="private",
    )

    def move(step: int) -> Callable[[list[int], int], tuple[int, str]]:
        def go(ids: list[int], index: int) -> tuple[int, str]:
            index = max(0, min(index + step, len(ids) - 1))
            return index, show(ids, index)

        return go

    for button, step in ((prev_btn, -1), (next_btn, 1)):
        button.click(
            move(step), [review_ids, review_index], [review_index, card], api_visibility="private"
        )

    def pick(ids: list[int], event: gr.SelectData) -> tuple[int, str]:
        index = event.index[0] if isinstance(event.index, list | tuple) else event.index
        return index, show(ids, index)

    queue_table.select(pick, review_ids, [review_index, card], api_visibility="private")

    def decide(decision: str) -> Callable:
        def run(
            ids: list[int],
            index: int,
            text: str,
            status: str,
            who: str,
            dataset: str,
            request: gr.Request,
        ) -> list:
            current = (status, who, dataset)
            if not ids:
                return [render.message("Nothing to review here.", "info"), text,
                        *refresh(*current, index)]  # fmt: skip
            cid = ids[max(0, min(index, len(ids) - 1))]
            actor = studio.actor(request)
            try:
                if decision == "withdraw":
                    review = studio.withdraw(actor, cid, text)
                else:
                    review = studio.review(actor, cid, decision, text)
            except Exception as exc:
                return [render.message(said(exc), "error"), text, *refresh(*current, index)]
            done = render.message(
                f"Correction #{cid} {review.decision} by {review.reviewer}.", "ok"
            )
            return [done, "", *refresh(*current, index)]

        return run

    for button, decision in (
        (approve_btn, "approve"),
        (reject_btn, "reject"),
        (withdraw_btn, "withdraw"),
    ):
        button.click(
            decide(decision),
            [review_ids, review_index, note, *filters],
            [review_msg, note, *queue_outputs],
            api_visibility="private",
        ).then(statistics, outputs=stats_outputs, api_visibility="private")

    def on_export(request: gr.Request) -> tuple[str | None, str]:
        try:
            path, count = studio.export(studio.actor(request))
        except Exception as exc:
            return None, render.message(said(exc), "error")
        return str(path), render.message(f"Exported {count} approved corrections.", "ok")

    export_btn.click(on_export, None, [export_file, export_msg], api_visibility="private").then(
        statistics, outputs=stats_outputs, api_visibility="private"
    )
