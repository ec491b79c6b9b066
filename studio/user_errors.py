"""What a user is told when a handler fails: a user error's own message, or that something went
wrong (a bug's traceback goes to the log, never to the user)."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from db import StoreError
from db.access import PermissionDenied
from studio.solving import InputError

# Errors raised on purpose for a user; their message says what to do. Anything else is a bug.
USER_ERRORS = (InputError, StoreError, PermissionDenied)
SOMETHING_WRONG = "Something went wrong (logged)."
log = logging.getLogger(__name__)


def said(exc: Exception) -> str:
    """What a user is told of ``exc``: a user error's own message; for anything else, that
    something went wrong (its traceback goes to the log, never to the user)."""
    if isinstance(exc, USER_ERRORS):
        return str(exc)
    log.error("unexpected error in a handler", exc_info=exc)
    return SOMETHING_WRONG


def user_errors(fn: Callable) -> Callable:
    """Turn every error into ``gr.Error`` with what the user may be told (see ``said``)."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stream(*args: Any, **kwargs: Any) -> Iterator:
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as exc:
                raise gr.Error(said(exc)) from exc

        return stream

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as exc:
            raise gr.Error(said(exc)) from exc

    return call
