"""A raw client of Gradio's queue protocol, as an attacker would use it: every event of the app by
its ``fn_index`` (private or not), with inputs built from the app's own config."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class RawClient:
    """Calls ``/gradio_api/queue/join`` directly, keeping one session (and its ``gr.State``)."""

    url: str
    cookies: dict[str, str] = field(default_factory=dict)
    session_hash: str = field(default_factory=lambda: uuid.uuid4().hex[:11])

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, cookies=self.cookies, timeout=120)

    @classmethod
    def signed_in(cls, url: str, name: str, password: str) -> RawClient:
        """A client holding the login cookie of ``name``."""
        response = httpx.post(
            f"{url.rstrip('/')}/login", data={"username": name, "password": password}
        )
        response.raise_for_status()
        return cls(url, dict(response.cookies))

    def config(self) -> dict[str, Any]:
        response = self.http.get("/config")
        response.raise_for_status()
        return response.json()

    def call(self, fn_index: int, data: list[Any]) -> dict[str, Any]:
        """Run one event; its last message (``process_completed``, or the refusal)."""
        body = {"data": data, "fn_index": fn_index, "session_hash": self.session_hash,
                "event_data": None, "trigger_id": None}  # fmt: skip
        joined = self.http.post("/gradio_api/queue/join", json=body)
        if joined.status_code != 200:
            return {"msg": "refused", "status": joined.status_code, "detail": joined.text}
        last: dict[str, Any] = {}
        with self.http.stream(
            "GET", "/gradio_api/queue/data", params={"session_hash": self.session_hash}
        ) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                last = json.loads(line[5:])
                if last.get("msg") in ("process_completed", "close_stream", "unexpected_error"):
                    break
        return last

    def sweep(self, overrides: dict[str, Any]) -> list[dict[str, Any]]:
        """Call every event of the app twice, in order, each input set to its component's value
        (or ``overrides[label]``): the second round finds the states the first one filled."""
        config = self.config()
        components = {c["id"]: c for c in config["components"]}
        results = []
        for _ in range(2):
            for index, dep in enumerate(config["dependencies"]):
                data = []
                for cid in dep["inputs"]:
                    props = components[cid].get("props", {})
                    data.append(overrides.get(props.get("label"), props.get("value")))
                results.append(self.call(dep.get("id", index), data))
        return results
