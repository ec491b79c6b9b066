"""A local OpenAI chat-completions server on 127.0.0.1 for the LLM-teacher tests.

It answers from a table of (question, thought) -> completion text, can be told to misbehave for
the next requests (429 with Retry-After, 500, malformed JSON, slow responses, 401) and counts
every request it receives.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from eotd.prompts import TRIGGERS


class FakeOpenAI:
    """``with FakeOpenAI(answers) as server: server.url`` -> ``http://127.0.0.1:PORT/v1``."""

    def __init__(self, answers: dict[tuple[str, str], str], slow_seconds: float = 1.0) -> None:
        self.answers = answers
        self.faults: deque[str] = deque()  # "429", "500", "503", "malformed", "slow", "401"
        self.always: str | None = None  # a fault returned for every request
        self.requests: list[dict] = []
        self.slow_seconds = slow_seconds
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.requests.append({"path": self.path, "body": body})
                    fault = server.faults.popleft() if server.faults else server.always
                if self.path != "/v1/chat/completions":
                    return self._send(404, b'{"error": "not found"}')
                if fault in ("429", "500", "503", "401"):
                    headers = {"Retry-After": "1"} if fault == "429" else {}
                    return self._send(int(fault), b'{"error": "try later"}', headers)
                if fault == "malformed":
                    return self._send(200, b'{"choices": [{"message": ')
                if fault == "slow":
                    time.sleep(server.slow_seconds)
                self._send(200, json.dumps(server.completion(body)).encode())

            def _send(self, status: int, payload: bytes, headers: dict | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (time-out tests)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def completion(self, body: dict) -> dict:
        """The scripted answer to the last user message (question + thought trigger)."""
        prompt = body["messages"][-1]["content"]
        question = prompt.split("\n")[0].removeprefix("Question: ")
        thought = next(t for t, trigger in TRIGGERS.items() if trigger in prompt)
        text = self.answers.get((question, thought), "I do not know.")
        return {
            "id": "cmpl-test",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        }

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
