"""A user is told what they can act on; a bug is logged with its traceback, never shown."""

from __future__ import annotations

import logging

import gradio as gr
import pytest

from studio.handlers import Studio
from studio.user_errors import SOMETHING_WRONG, user_errors
from tests.app.support import VISITOR


def test_a_bug_reaches_the_user_as_something_went_wrong_and_the_log_in_full(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @user_errors
    def broken() -> None:
        return {}["no such key"]

    with (
        caplog.at_level(logging.ERROR, logger="studio.user_errors"),
        pytest.raises(gr.Error) as raised,
    ):
        broken()
    assert raised.value.message == SOMETHING_WRONG
    assert "KeyError: 'no such key'" in caplog.text and "Traceback" in caplog.text


def test_errors_raised_for_the_user_keep_their_message(studio: Studio) -> None:
    @user_errors
    def solve(question: str):
        yield from studio.solve(VISITOR, question)

    @user_errors
    def store_problem(question: str) -> None:
        studio.store.add_problem(question)

    with pytest.raises(gr.Error, match="The question is empty"):
        list(solve("   "))
    with pytest.raises(gr.Error, match="the question is empty"):  # the store's own refusal
        store_problem("  ")
