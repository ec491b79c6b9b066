"""The sandbox's wire: framed messages on a socket, and the JSON the parent accepts from workers.

A message is an 8-byte big-endian length and that many bytes; a receiver refuses a length over
its limit before reading on. What workers and the zygote send the parent is JSON, decoded with
:func:`decode` and checked against the type the parent expects (:func:`convert`), so a hostile
worker can send data, never code: the parent never unpickles. Floats JSON cannot spell travel as
Python's tokens ``NaN``, ``Infinity`` and ``-Infinity``, and only those decode to non-finite
floats (a number like ``1e999`` is refused). Tuples arrive as lists (``convert`` makes them tuples
again where the type says so), dataclasses as objects, dict keys as strings.
"""

from __future__ import annotations

import dataclasses
import json
import math
import select
import socket
import struct
import time
import types
import typing
from dataclasses import dataclass
from typing import Any

MAX_REPLY_BYTES = 1 << 20
"""The largest reply a worker may send (its value and printed output, as JSON)."""
STDOUT_CAP = 10_000
"""Characters of the task's printed output kept; the rest is replaced by :data:`TRUNCATED`."""
TRUNCATED = "\n[output truncated]"
REPLY_STATUSES = ("ok", "error", "memory_error")

_HEADER = struct.Struct("!Q")
_CONSTANTS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class MalformedMessage(ValueError):
    """A message that is not what the receiver accepts (too long, not JSON, the wrong shape)."""


@dataclass
class Reply:
    """A worker's answer to one task: ``status`` is one of :data:`REPLY_STATUSES`."""

    status: str
    value: Any = None
    error: str | None = None
    exc_type: str | None = None
    stdout: str = ""


def frame(data: bytes) -> bytes:
    return _HEADER.pack(len(data)) + data


class Channel:
    """One end of a socket pair, carrying framed messages."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, data: bytes) -> None:
        self.sock.sendall(frame(data))

    def poll(self, timeout: float | None) -> bool:
        """Whether a message (or the hang-up) arrives within ``timeout`` seconds."""
        return bool(select.select([self.sock], [], [], timeout)[0])

    def recv(self, limit: int, deadline: float | None = None) -> bytes:
        """The next message. EOFError: the peer hung up; TimeoutError: it did not arrive in full
        by ``deadline`` (a :func:`time.monotonic` time); MalformedMessage: over ``limit`` bytes."""
        try:
            (size,) = _HEADER.unpack(self._read(_HEADER.size, deadline))
            if size > limit:
                raise MalformedMessage(f"a message of {size} bytes (the limit is {limit})")
            return self._read(size, deadline)
        finally:
            if deadline is not None:
                self.sock.settimeout(None)

    def _read(self, size: int, deadline: float | None) -> bytes:
        buffer = bytearray(size)
        view, got = memoryview(buffer), 0
        while got < size:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the message did not arrive in time")
                self.sock.settimeout(left)
            count = self.sock.recv_into(view[got:])
            if not count:
                raise EOFError("the peer hung up")
            got += count
        return bytes(buffer)

    def send_with_fd(self, data: bytes, fd: int) -> None:
        socket.send_fds(self.sock, [data], [fd])

    def recv_with_fd(self, size: int) -> tuple[bytes, int]:
        data, fds, _, _ = socket.recv_fds(self.sock, size, 1)
        if len(data) != size or len(fds) != 1:
            raise EOFError("the peer hung up")
        return data, fds[0]

    def close(self) -> None:
        self.sock.close()


def encode(value: Any) -> bytes:
    """``value`` as JSON (dataclasses as objects); TypeError or ValueError if it is not data."""
    return json.dumps(value, default=_as_data, separators=(",", ":")).encode()


def _as_data(obj: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    raise TypeError(f"a {type(obj).__name__} is not JSON data")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"the number {text[:20]} is out of range")
    return number


def decode(data: bytes, expected: Any) -> Any:
    """The JSON ``data`` as an ``expected`` (see :func:`convert`); MalformedMessage if not."""
    try:
        value = json.loads(data, parse_float=_finite, parse_constant=_CONSTANTS.__getitem__)
    except (ValueError, RecursionError) as exc:  # bad UTF-8 and bad JSON are ValueErrors
        raise MalformedMessage(f"not JSON ({type(exc).__name__}: {str(exc)[:200]})") from None
    return convert(value, expected)


def decode_reply(data: bytes, expected: Any) -> Reply:
    """A worker's reply, its value converted to ``expected``; MalformedMessage if not."""
    reply = decode(data, Reply)
    if reply.status not in REPLY_STATUSES:
        raise MalformedMessage(f"the unknown status {reply.status[:40]!r}")
    if len(reply.stdout) > STDOUT_CAP + len(TRUNCATED):
        raise MalformedMessage("printed output over the cap")
    if reply.status == "ok":
        reply.value = convert(reply.value, expected)
    elif reply.value is not None:
        raise MalformedMessage(f"a value with the status {reply.status!r}")
    return reply


def convert(value: Any, expected: Any) -> Any:
    """Decoded JSON ``value`` as the type ``expected`` says, or MalformedMessage.

    Understands ``Any``/``object`` (any JSON), ``None``, ``bool``, ``int``, ``float`` (an int
    too), ``str``, ``X | Y``, ``list[X]``, ``tuple[X, Y]``, ``tuple[X, ...]``, ``dict[str, X]``
    and dataclasses (an object with exactly their fields); TypeError for any other type.
    """
    origin, params = typing.get_origin(expected) or expected, typing.get_args(expected)
    if expected in (Any, object):
        return value
    if expected is None or expected is type(None):
        if value is None:
            return None
    elif expected is float:
        if type(value) in (int, float):
            return float(value)
    elif expected in (bool, int, str):
        if type(value) is expected:
            return value
    elif dataclasses.is_dataclass(expected):
        names = {f.name for f in dataclasses.fields(expected)}
        if isinstance(value, dict) and set(value) == names:
            hints = typing.get_type_hints(expected)
            return expected(**{name: convert(value[name], hints[name]) for name in names})
    elif origin in (typing.Union, types.UnionType):
        for option in params:
            try:
                return convert(value, option)
            except MalformedMessage:
                pass
    elif origin in (list, tuple, dict):
        if origin is list and isinstance(value, list):
            return [convert(item, params[0] if params else Any) for item in value]
        if origin is tuple and isinstance(value, list):
            if not params or params[-1] is Ellipsis:
                return tuple(convert(item, params[0] if params else Any) for item in value)
            if len(value) == len(params):
                return tuple(map(convert, value, params))
        if origin is dict and params[:1] not in ((), (str,)):
            raise TypeError(f"JSON object keys are strings, not as in {expected!r}")
        if origin is dict and isinstance(value, dict):
            return {key: convert(item, params[1] if params else Any) for key, item in value.items()}
    else:
        raise TypeError(f"the sandbox cannot check a value of type {expected!r}")
    raise MalformedMessage(f"expected {expected!r}, got a {type(value).__name__}")
