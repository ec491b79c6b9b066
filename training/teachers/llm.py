"""The LLM teacher: any model behind the OpenAI chat-completions protocol writes CoT, PoT and EoT.

Works with vLLM, Ollama, llama.cpp server, TGI and OpenAI. For each problem and thought it asks
for `samples` completions at `temperature` (one request per sample, so servers without ``n``
work too), `concurrency` requests at a time. Failures are retried with exponential backoff
(429, 5xx, time-outs, connection errors and malformed bodies), honouring ``Retry-After``.
Every good raw response is appended to a JSONL cache keyed by (model, prompt, sample index,
temperature), so an interrupted run resumes without paying twice. Targets are kept by the caller
only if they reach the gold answer (`training.teachers.verify`).
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from training.teachers.prompts import messages

RETRY_STATUSES = {408, 409, 425, 429, 500, 502, 503, 504}


class TeacherError(RuntimeError):
    """A problem that stops the whole run (bad settings, refused credentials)."""


@dataclass
class LLMSettings:
    """Where and how to ask; unset endpoint values come from the environment."""

    base_url: str | None = None  # OPENAI_BASE_URL, e.g. http://localhost:8000/v1
    api_key: str | None = None  # OPENAI_API_KEY (optional for local servers)
    model: str | None = None  # EOTD_TEACHER_MODEL
    samples: int = 1
    temperature: float = 0.7
    max_tokens: int = 512
    concurrency: int = 8
    timeout: float = 60.0
    retries: int = 5
    backoff: float = 1.0  # first retry delay in seconds, doubled each time
    max_backoff: float = 30.0
    max_retry_after: float = 300.0  # the longest Retry-After wait honoured
    cache: Path | None = None
    progress: bool = True

    def resolved(self) -> LLMSettings:
        """A copy with endpoint values filled from the environment; TeacherError if missing."""
        base_url = self.base_url or os.environ.get("OPENAI_BASE_URL")
        model = self.model or os.environ.get("EOTD_TEACHER_MODEL")
        if not base_url:
            raise TeacherError("no API base URL: pass --base_url or set OPENAI_BASE_URL")
        if not model:
            raise TeacherError("no teacher model: pass --model or set EOTD_TEACHER_MODEL")
        if self.samples < 1 or self.concurrency < 1 or self.retries < 0:
            raise TeacherError("samples and concurrency must be at least 1, retries at least 0")
        copy = LLMSettings(**{**self.__dict__})
        copy.base_url = base_url.rstrip("/")
        copy.model = model
        copy.api_key = self.api_key or os.environ.get("OPENAI_API_KEY")
        return copy


@dataclass
class Request:
    """One completion to ask for."""

    problem_id: str
    thought: str
    sample: int
    messages: list[dict[str, str]]


@dataclass
class Reply:
    """The text a request produced, or why it produced none."""

    request: Request
    text: str | None
    error: str | None = None
    cached: bool = False


@dataclass
class LLMStats:
    """What the run cost and how it went."""

    requests: int = 0  # HTTP requests sent, retries included
    cached: int = 0  # replies served from the cache
    retries: int = 0
    failures: Counter = field(default_factory=Counter)  # reason -> count of replies given up
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "cached": self.cached,
            "retries": self.retries,
            "failures": dict(self.failures),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }


def cache_key(model: str, msgs: list[dict[str, str]], sample: int, temperature: float) -> str:
    """Stable key of one completion: model, prompt, sample index and temperature."""
    blob = json.dumps([model, msgs, sample, temperature], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class ResponseCache:
    """Append-only JSONL of raw responses; a torn last line (an interrupted write) is ignored."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        if path is not None and path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                    self.entries[entry["key"]] = entry["response"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def put(self, key: str, meta: dict[str, Any], response: dict[str, Any]) -> None:
        with self._lock:
            self.entries[key] = response
            if self.path is None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            line = json.dumps({"key": key, **meta, "response": response}, ensure_ascii=False)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line + "\n")


def retry_after(response: httpx.Response) -> float | None:
    """Seconds asked for by a Retry-After header (delta seconds or an HTTP date), if any."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())


def extract_target(thought: str, text: str) -> str:
    """The target in a completion: code fences and chatter around a program removed."""
    text = text.strip()
    fenced = re.findall(r"```[a-zA-Z]*\n(.*?)```", text, re.S)
    if thought in ("pot", "eot") and fenced:
        text = max(fenced, key=len).strip()
    return text


class ChatClient:
    """A small OpenAI chat-completions client with retries, backoff and a response cache."""

    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings.resolved()
        headers = {"Content-Type": "application/json"}
        if self.settings.api_key:
            headers["Authorization"] = f"Bearer {self.settings.api_key}"
        self.http = httpx.Client(
            base_url=self.settings.base_url or "",
            headers=headers,
            timeout=self.settings.timeout,
            limits=httpx.Limits(max_connections=self.settings.concurrency),
        )
        self.cache = ResponseCache(self.settings.cache)
        self.stats = LLMStats()
        self._lock = threading.Lock()

    def close(self) -> None:
        self.http.close()

    def _count(self, **changes: int) -> None:
        with self._lock:
            for name, delta in changes.items():
                setattr(self.stats, name, getattr(self.stats, name) + delta)

    def complete(self, request: Request) -> Reply:
        """One completion, from the cache or the server; never raises for server trouble."""
        s = self.settings
        key = cache_key(s.model or "", request.messages, request.sample, s.temperature)
        cached = self.cache.get(key)
        if cached is not None:
            self._count(cached=1)
            return Reply(request, _content(cached), cached=True)
        body = {
            "model": s.model,
            "messages": request.messages,
            "temperature": s.temperature,
            "max_tokens": s.max_tokens,
        }
        error = "unknown"
        for attempt in range(s.retries + 1):
            if attempt:
                self._count(retries=1)
            wait: float | None = None
            try:
                self._count(requests=1)
                response = self.http.post("/chat/completions", json=body)
            except httpx.TimeoutException:
                error = "timeout"
            except httpx.TransportError as exc:
                error = f"connection_error ({type(exc).__name__})"
            else:
                if response.status_code in (401, 403):
                    raise TeacherError(
                        f"the server refused the credentials (HTTP {response.status_code}): "
                        "check OPENAI_API_KEY / --api_key"
                    )
                if response.status_code == 200:
                    try:
                        data = response.json()
                        content = _content(data)
                    except (json.JSONDecodeError, KeyError, IndexError, TypeError):
                        error = "malformed_response"
                    else:
                        usage = data.get("usage") or {}
                        self._count(
                            prompt_tokens=int(usage.get("prompt_tokens") or 0),
                            completion_tokens=int(usage.get("completion_tokens") or 0),
                        )
                        meta = {"model": s.model, "sample": request.sample}
                        self.cache.put(key, {**meta, "temperature": s.temperature}, data)
                        return Reply(request, content)
                else:
                    error = f"http_{response.status_code}"
                    if response.status_code not in RETRY_STATUSES:
                        break
                    wait = retry_after(response)
            if attempt < s.retries:
                delay = min(s.max_backoff, s.backoff * 2**attempt) * (0.5 + random.random() / 2)
                time.sleep(min(s.max_retry_after, wait) if wait is not None else delay)
        with self._lock:
            self.stats.failures[error] += 1
        return Reply(request, None, error=error)

    def complete_all(self, requests: list[Request]) -> list[Reply]:
        """All completions, `concurrency` at a time, with a progress bar; in request order."""
        bar = tqdm(
            total=len(requests), desc="teacher", unit="req", disable=not self.settings.progress
        )
        replies: list[Reply | None] = [None] * len(requests)

        def run(index: int) -> None:
            replies[index] = self.complete(requests[index])
            with self._lock:
                bar.update(1)
                bar.set_postfix(
                    cached=self.stats.cached,
                    sent=self.stats.requests,
                    failed=sum(self.stats.failures.values()),
                    refresh=False,
                )

        try:
            with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
                list(pool.map(run, range(len(requests))))
        finally:
            bar.close()
        return [r for r in replies if r is not None]


def _content(data: dict[str, Any]) -> str:
    content = data["choices"][0]["message"]["content"]
    if not isinstance(content, str):
        raise TypeError("message content is not text")
    return content


def build_requests(
    problems: Iterable[dict[str, Any]], thoughts: Iterable[str], samples: int
) -> list[Request]:
    """One request per problem, thought and sample index."""
    thoughts = list(thoughts)
    return [
        Request(p["id"], t, k, messages(p["question"], t))
        for p in problems
        for t in thoughts
        for k in range(samples)
    ]
