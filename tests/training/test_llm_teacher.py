"""The LLM teacher's client against a real HTTP server on 127.0.0.1 speaking the OpenAI protocol."""

import time

import pytest

from tests.training.llm_server import FakeOpenAI
from training.teachers.llm import (
    ChatClient,
    LLMSettings,
    TeacherError,
    build_requests,
    extract_target,
)
from training.teachers.prompts import EXAMPLES, messages
from training.teachers.verify import check

PROBLEMS = [
    {"id": "p1", "question": "Tom has 3 apples and buys 4 more. How many apples?", "answer": 7},
    {"id": "p2", "question": "A box holds 6 eggs. How many eggs are in 5 boxes?", "answer": 30},
]
ANSWERS = {
    (PROBLEMS[0]["question"], "cot"): "3 + 4 = 7.\nThe answer is 7.",
    (PROBLEMS[0]["question"], "pot"): "```python\napples = 3 + 4\nans = apples\n```",
    (
        PROBLEMS[0]["question"],
        "eot",
    ): "% Tom has 3 apples and buys 4 more.\napples = 3 + 4\nans = apples",
    (PROBLEMS[1]["question"], "cot"): "6 * 5 = 30.\nThe answer is 30.",
    (PROBLEMS[1]["question"], "pot"): "ans = 6 * 5",
    (PROBLEMS[1]["question"], "eot"): "eggs = 6 * 5\nans = eggs",
}


def settings(server, tmp_path, **overrides):
    base = {
        "base_url": server.url,
        "model": "teacher-test",
        "api_key": "sk-test",
        "timeout": 0.5,
        "backoff": 0.01,
        "retries": 4,
        "concurrency": 1,
        "cache": tmp_path / "cache.jsonl",
        "progress": False,
    }
    return LLMSettings(**{**base, **overrides})


def run(server, tmp_path, problems=PROBLEMS, **overrides):
    client = ChatClient(settings(server, tmp_path, **overrides))
    try:
        replies = client.complete_all(
            build_requests(problems, ("cot", "pot", "eot"), client.settings.samples)
        )
    finally:
        client.close()
    return replies, client.stats


def test_requests_follow_the_protocol_and_targets_are_extracted(tmp_path):
    with FakeOpenAI(ANSWERS) as server:
        replies, stats = run(server, tmp_path, temperature=0.3)
        sent = server.requests[0]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["model"] == "teacher-test" and sent["body"]["temperature"] == 0.3
    assert sent["body"]["messages"][0]["role"] == "system"
    assert [r.error for r in replies] == [None] * 6
    pot = next(r for r in replies if r.request.thought == "pot" and r.request.problem_id == "p1")
    assert extract_target("pot", pot.text) == "apples = 3 + 4\nans = apples"
    assert stats.requests == 6 and stats.prompt_tokens == 600 and stats.completion_tokens == 120


@pytest.mark.stress
def test_429_500_malformed_and_slow_responses_are_retried_until_they_succeed(tmp_path):
    with FakeOpenAI(ANSWERS) as server:
        server.faults.extend(["429", "500", "malformed", "slow"])
        started = time.monotonic()
        replies, stats = run(server, tmp_path, problems=PROBLEMS[:1])
        elapsed = time.monotonic() - started
    assert all(r.text for r in replies), [r.error for r in replies]
    assert stats.retries == 4 and stats.requests == 3 + 4
    assert elapsed >= 1.0  # the 429's Retry-After: 1 was honoured
    assert not stats.failures


def test_a_server_that_keeps_failing_is_given_up_with_the_reason(tmp_path):
    with FakeOpenAI(ANSWERS) as server:
        server.always = "503"
        replies, stats = run(server, tmp_path, problems=PROBLEMS[:1], retries=2)
        assert len(server.requests) == 3 * 3  # 3 thoughts, 1 try + 2 retries each
    assert {r.error for r in replies} == {"http_503"}
    assert stats.failures == {"http_503": 3}


def test_timeouts_are_reported_when_retries_run_out(tmp_path):
    with FakeOpenAI(ANSWERS, slow_seconds=1.0) as server:
        server.always = "slow"
        replies, stats = run(server, tmp_path, problems=PROBLEMS[:1], timeout=0.2, retries=1)
    assert {r.error for r in replies} == {"timeout"}
    assert stats.failures == {"timeout": 3}


def test_refused_credentials_stop_the_run_with_a_clear_error(tmp_path):
    with FakeOpenAI(ANSWERS) as server:
        server.always = "401"
        with pytest.raises(TeacherError, match="refused the credentials"):
            run(server, tmp_path)


def test_a_second_run_is_served_from_the_cache_without_requests(tmp_path):
    with FakeOpenAI(ANSWERS) as server:
        first, _ = run(server, tmp_path, samples=2)
        sent = len(server.requests)
        second, stats = run(server, tmp_path, samples=2)
        assert len(server.requests) == sent == 12
    assert stats.requests == 0 and stats.cached == 12
    assert [r.text for r in second] == [r.text for r in first]


def test_an_interrupted_run_resumes_and_pays_only_for_what_is_missing(tmp_path):
    with FakeOpenAI(ANSWERS) as server:
        run(server, tmp_path, problems=PROBLEMS[:1])
        with (tmp_path / "cache.jsonl").open("a") as f:
            f.write('{"key": "torn-line-from-a-kill')  # a write cut short by the interruption
        _, stats = run(server, tmp_path)
    assert stats.cached == 3 and stats.requests == 3


def test_cache_is_keyed_by_model_temperature_and_sample(tmp_path):
    with FakeOpenAI(ANSWERS) as server:
        run(server, tmp_path, problems=PROBLEMS[:1])
        _, other_model = run(server, tmp_path, problems=PROBLEMS[:1], model="another")
        _, other_temp = run(server, tmp_path, problems=PROBLEMS[:1], temperature=0.1)
    assert other_model.requests == 3 and other_temp.requests == 3


def test_settings_come_from_the_environment_and_missing_ones_are_named(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    monkeypatch.setenv("EOTD_TEACHER_MODEL", "env-model")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    resolved = LLMSettings().resolved()
    assert (resolved.base_url, resolved.model, resolved.api_key) == (
        "http://127.0.0.1:9/v1",
        "env-model",
        "sk-env",
    )
    monkeypatch.delenv("EOTD_TEACHER_MODEL")
    with pytest.raises(TeacherError, match="EOTD_TEACHER_MODEL"):
        LLMSettings().resolved()


@pytest.mark.parametrize("thought", ["cot", "pot", "eot"])
def test_few_shot_examples_are_correct_and_use_the_student_prompt(thought):
    for _, targets, answer in EXAMPLES:
        assert check(thought, targets[thought], answer).ok, targets[thought]
    msgs = messages("How many legs do 3 cats have?", thought)
    assert msgs[-1]["content"].startswith("Question: How many legs do 3 cats have?\n")
    assert len(msgs) == 2 + 2 * len(EXAMPLES)
