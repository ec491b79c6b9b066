"""Every named API endpoint, through gradio_client against the launched app, over a SQLite
store and a PostgreSQL one."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from db import APPROVED, PENDING
from tests.app.support import SVAMP_1, SVAMP_1_EOT, Served
from tests.db.support import BACKENDS

ENDPOINTS = {"/solve", "/check_equations", "/save_correction", "/review_correction",
             "/export_corrections"}  # fmt: skip


@pytest.fixture(scope="module", params=BACKENDS)
def store_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres").create_database("app_api")


@pytest.fixture(scope="module")
def client(served: Served) -> Client:
    return Client(served.url, verbose=False)


def test_the_five_endpoints_are_named(client: Client) -> None:
    named = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(named) >= ENDPOINTS


def test_solve_streams_each_thought_then_the_vote_and_records_them(
    client: Client, served: Served
) -> None:
    job = client.submit(SVAMP_1, api_name="/solve")
    job.result()
    states = job.outputs()
    counts = [len(s["thoughts"]) for s in states]
    assert counts == sorted(counts) and counts[-1] == 3
    assert any(0 < n < 3 for n in counts), "no partial result before the end"
    writing = [v for s in states[:-1] for v in s["thoughts"].values() if v["status"] == "writing"]
    assert writing, "no text while it was being written"
    assert all(v["answer"] is None and v["generation_id"] is None for v in writing)
    assert [s["done"] for s in states].count(True) == 1 and states[-1]["done"]
    final = states[-1]
    assert (final["gold"], final["source"], final["source_id"]) == (51, "svamp", "svamp-chal-1")
    assert final["vote"]["strategy"] == "verified"  # the shipped selector chooses
    assert 0.0 <= final["vote"]["confidence"] <= 1.0
    assert final["vote"]["correct"] is not None  # gold is known, so the answer is judged
    ids = [final["thoughts"][t]["generation_id"] for t in ("cot", "pot", "eot")]
    assert all(ids) and len(set(ids)) == 3
    assert served.studio.store.stats().generations >= 3


@pytest.mark.parametrize(
    ("question", "says"),
    [("   ", "empty"), ("3 apples " * 300, "limit is 2,000"), ("What is love?", "no numbers")],
)
def test_solve_refuses_empty_long_and_non_math_questions(
    client: Client, question: str, says: str
) -> None:
    with pytest.raises(AppError, match=says):
        client.predict(question, api_name="/solve")


def test_check_equations_gives_values_or_the_error_line(client: Client) -> None:
    ok = client.predict("a = 3\nb = a + 2\nans = b", api_name="/check_equations")
    assert ok["status"] == "solved" and ok["answer"] == 5 and ok["values"]["b"] == 5
    bad = client.predict("a = 3\nb = a +\nans = b", api_name="/check_equations")
    assert bad["status"] == "parse_error" and bad["line"] == 2 and bad["error"]


def test_correct_review_and_export_round_trip(client: Client, served: Served) -> None:
    """Local mode: the one person at this machine saves, reviews and exports."""
    final = client.predict(SVAMP_1, api_name="/solve")
    eot = final["thoughts"]["eot"]
    saved = client.predict(
        final["problem_id"], "eot", SVAMP_1_EOT, eot["generation_id"], api_name="/save_correction"
    )
    assert saved["status"] == PENDING and saved["answer"] == 51 and saved["matches_gold"] is True
    stored = served.studio.store.get_correction(saved["correction_id"])
    assert stored.original_text == eot["text"] and stored.corrected_text == SVAMP_1_EOT
    assert stored.annotator == "local"

    with pytest.raises(AppError, match="does not solve"):
        client.predict(final["problem_id"], "eot", "x = y +", api_name="/save_correction")
    kept = client.predict(
        final["problem_id"], "eot", "x = y +", None, True, api_name="/save_correction"
    )
    assert kept["unsolved"] is True

    with pytest.raises(AppError, match="cannot be approved"):
        client.predict(kept["correction_id"], "approve", api_name="/review_correction")
    review = client.predict(
        saved["correction_id"], "approve", "looks right", api_name="/review_correction"
    )
    assert review == {"correction_id": saved["correction_id"], "decision": APPROVED,
                      "reviewer": "local", "note": "looks right"}  # fmt: skip

    path = Path(client.predict(api_name="/export_corrections"))
    with zipfile.ZipFile(path) as archive:
        rows = [json.loads(line) for line in archive.read("corrections.jsonl").splitlines()]
    assert [(r["target"], r["answer"], r["annotator"]) for r in rows] == [
        (SVAMP_1_EOT, 51, "local")
    ]
    actions = [e.action for e in served.studio.store.audit_log()]
    assert actions[:4] == ["export", "correction.approved", "correction.save", "correction.save"]
