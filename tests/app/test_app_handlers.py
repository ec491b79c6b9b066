"""The handlers behind the UI, in-process: input checks, safe rendering, active learning, model
versions, review queue filters and statistics."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from db import ReviewError, StoreError
from db.access import Actor, PermissionDenied, Role
from eotd.prompts import THOUGHTS
from eotd.student import ThoughtResult
from studio import render
from studio.active import read_pool, uncertainty
from studio.batching import Batcher
from studio.handlers import Studio, accuracy_rows, mean_accuracy
from studio.solving import (
    WRITING,
    InputError,
    ProblemRef,
    SolveState,
    ThoughtView,
    check_question,
    decide,
    examine,
    record,
)
from tests.app.support import ADMIN, ANN, BOB, REV, SVAMP_1, SVAMP_1_EOT, VISITOR, make_studio

EVAL_REPORT = {
    "datasets": {
        "gsm8k": {"accuracy": {"cot": 10.0, "pot": 20.0, "eot": 30.0, "majority": 40.0}},
        "svamp": {"accuracy": {"cot": 20.0, "pot": 30.0, "eot": 40.0, "majority": 50.0}},
    }
}


@pytest.mark.parametrize(
    ("question", "says"),
    [
        ("", "empty"),
        ("\n  \t", "empty"),
        ("x" * 1991 + " 12 apples", "limit is 2,000"),
        ("Why is the sky blue?", "no numbers"),
    ],
)
def test_bad_questions_get_a_clear_message(question: str, says: str) -> None:
    with pytest.raises(InputError, match=says):
        check_question(question)


def test_questions_with_numbers_or_number_words_pass() -> None:
    assert (
        check_question("  Tom has three apples. How many?  ") == "Tom has three apples. How many?"
    )
    assert check_question("What is 2 + 2?") == "What is 2 + 2?"
    assert len(check_question("x" * 1990 + " 12 apples")) == 2000


def test_model_and_user_text_is_escaped(studio: Studio) -> None:
    evil = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    view = ThoughtView("eot", f"a = 1\n{evil}", "parse_error", None, f"bad {evil}", line=2)
    panel = render.thought_panel(view)
    assert "<script>" not in panel and "<img" not in panel and "&lt;script&gt;" in panel
    assert 'class="eq-line err"' in panel  # the offending line is marked
    problem = studio.store.add_problem(f"{evil} 3 apples", None)
    correction = studio.save_correction(
        Actor(evil, Role.ANNOTATOR), problem.id, "eot", "a = 3\nans = a"
    )
    card = render.correction_card(correction, [])
    assert "<script>" not in card and "<img" not in card and "&lt;img" in card


def test_a_cot_panel_says_when_its_arithmetic_slips_and_what_redoing_gives() -> None:
    slipped = ThoughtView("cot", "20 + 300 = 300. The answer is 300.", "answered", 300.0)
    panel = render.thought_panel(slipped)
    assert "extracted answer: <b>300</b>" in panel and "redone it gives <b>320</b>" in panel
    sound = ThoughtView("cot", "20 + 300 = 320. The answer is 320.", "answered", 320.0)
    assert "redone" not in render.thought_panel(sound)


def test_diff_shows_removed_and_added_lines() -> None:
    html = render.diff_html("a = 3\nans = a", "a = 3\nb = 4\nans = a + b")
    assert '<div class="add">+ b = 4</div>' in html
    assert '<div class="del">- ans = a</div>' in html
    assert '<div class="same">  a = 3</div>' in html


def test_pool_files_are_read_with_gold_or_refused_with_the_line(tmp_path: Path) -> None:
    jsonl = tmp_path / "pool.jsonl"
    jsonl.write_text('{"question": "Tom has 3 apples and 4 pears. How many?", "answer": 7}\n\n')
    assert read_pool(jsonl) == [
        ProblemRef("Tom has 3 apples and 4 pears. How many?", 7.0, "upload", None)
    ]
    csv = tmp_path / "pool.csv"
    csv.write_text(
        'question,answer\n"I have 1,200 coins, spend 200. Left?","1,000"\nAdd 2 and 2,\n'
    )
    assert [(p.question, p.gold) for p in read_pool(csv)] == [
        ("I have 1,200 coins, spend 200. Left?", 1000.0),
        ("Add 2 and 2", None),
    ]
    cases = {
        "bad.jsonl": ('{"question": "1 + 1?"}\n{oops\n', "line 2: not JSON"),
        "noq.jsonl": ('{"text": "1 + 1?"}\n', "line 1: each row needs a 'question'"),
        "gold.jsonl": ('{"question": "1 + 1?", "answer": "two"}\n', "'two' is not a number"),
        "math.jsonl": ('{"question": "Why?"}\n', "line 1: .*no numbers"),
        "cols.csv": ("text\n1 + 1?\n", "needs a 'question' column"),
        "pool.txt": ("1 + 1?\n", "upload a .jsonl or .csv"),
    }
    for name, (content, says) in cases.items():
        (tmp_path / name).write_text(content)
        with pytest.raises(InputError, match=says):
            read_pool(tmp_path / name)


def _state(answers: dict[str, float | None], gold: float | None) -> SolveState:
    state = SolveState(1, ProblemRef("q 1", gold))
    for thought, answer in answers.items():
        status = "solved" if answer is not None else "parse_error"
        state.thoughts[thought] = ThoughtView(thought, "", status, answer)
    state.verdict = decide(state.problem.question, list(state.thoughts.values()), gold)
    return state


def test_uncertainty_ranks_failures_disagreement_doubt_and_wrong_answers() -> None:
    sure = _state({"cot": 5.0, "pot": 5.0, "eot": 5.0}, 5.0)
    split = _state({"cot": 4.0, "pot": 5.0, "eot": 5.0}, 5.0)
    failing = _state({"cot": 5.0, "pot": None, "eot": 5.0}, 5.0)
    wrong = _state({"cot": 4.0, "pot": 4.0, "eot": 4.0}, 5.0)
    score, why = (lambda s: uncertainty(s)[0]), (lambda s: uncertainty(s)[1])
    assert score(sure) < min(score(split), score(failing)) and score(sure) < score(wrong)
    assert why(sure) == [f"selector {sure.verdict.confidence:.0%} sure"]
    assert "2 different answers" in why(split)
    assert "no answer from pot" in why(failing)
    assert "chosen answer differs from gold" in why(wrong)
    # Otherwise equal problems: the one the selector doubts more ranks first.
    doubted = _state({"cot": 5.0, "pot": 5.0, "eot": 5.0}, 5.0)
    doubted.verdict.confidence = sure.verdict.confidence / 2
    assert score(doubted) > score(sure)


def test_ranking_a_pool_solves_in_one_batch_and_records_every_thought(studio: Studio) -> None:
    ranked = studio.rank(ADMIN, "svamp", 3)
    assert len(ranked) == 3
    assert [r.score for r in ranked] == sorted((r.score for r in ranked), reverse=True)
    for r in ranked:
        assert r.state.problem.source == "svamp" and r.state.problem.gold is not None
        assert sorted(r.state.thoughts) == ["cot", "eot", "pot"]
        assert all(v.generation_id for v in r.state.thoughts.values())
    assert studio.store.stats().generations == 9


def test_an_uploaded_pool_is_ranked_with_its_gold_answers(studio: Studio, tmp_path: Path) -> None:
    pool = tmp_path / "pool.csv"
    pool.write_text("question,answer\nI had 5 pens and lost 2. How many now?,3\nWhat is 4 x 4?,\n")
    ranked = studio.rank(ADMIN, "upload", 8, upload=str(pool))
    assert sorted((r.state.problem.question, r.state.problem.gold) for r in ranked) == [
        ("I had 5 pens and lost 2. How many now?", 3.0), ("What is 4 x 4?", None),
    ]  # fmt: skip
    assert {r.state.problem.source for r in ranked} == {"upload"}


def test_model_versions_switch_promote_and_load_at_start(
    studio: Studio, tiny_model_dir: Path, tmp_path: Path, eval_sets
) -> None:
    version = studio.store.register_model_version(
        "tiny-v2", str(tiny_model_dir), None, metrics=EVAL_REPORT
    )
    assert studio.model_info().version is None  # the injected student is not a registered one
    info = studio.switch_model(ADMIN, version.id)
    assert (info.name, info.version.id, info.adapter) == ("tiny-v2", version.id, None)
    state = list(studio.solve(VISITOR, "Tom has 3 apples and buys 5 more. How many?"))[-1]
    assert state.model_version_id == version.id and state.model_name == "tiny-v2"
    with pytest.raises(InputError, match="no model version #999"):
        studio.switch_model(ADMIN, 999)

    studio.promote(ADMIN, version.id)
    fresh = Studio(studio.store, eval_sets=eval_sets, max_new_tokens=4)
    assert fresh.model_info().version.id == version.id  # loads the promoted one
    assert fresh.student().settings.max_new_tokens == 4

    frame = studio.accuracy_frame()
    assert frame.to_dict("records") == [
        {"model": "tiny-v2", "thought": t, "accuracy": a}
        for t, a in {"cot": 15.0, "pot": 25.0, "eot": 35.0, "majority": 45.0}.items()
    ]


def test_accuracy_is_read_from_either_report_shape() -> None:
    assert accuracy_rows(EVAL_REPORT)[1] == {
        "set": "svamp", "cot": 20.0, "pot": 30.0, "eot": 40.0, "majority": 50.0,
    }  # fmt: skip
    assert mean_accuracy({"accuracy": {"eot": 12.5, "other": 3}}) == {"eot": 12.5}
    assert mean_accuracy({"eval_loss": 1.2}) == {} and mean_accuracy(None) == {}


def test_queue_filters_and_statistics(studio: Studio) -> None:
    example = list(studio.solve(VISITOR, SVAMP_1))[-1]
    typed = list(studio.solve(VISITOR, "I have 2 cats and 3 dogs. How many pets?"))[-1]
    eot = example.thoughts["eot"]
    first = studio.save_correction(ANN, example.problem_id, "eot", SVAMP_1_EOT, eot.generation_id)
    second = studio.save_correction(BOB, typed.problem_id, "cot", "2 + 3 = 5. The answer is 5.")
    assert [c.id for c in studio.queue()] == [first.id, second.id]
    assert [c.id for c in studio.queue("pending", "bob")] == [second.id]
    assert [c.id for c in studio.queue("pending", "all", "svamp")] == [first.id]
    assert [c.id for c in studio.queue("pending", None, "typed in")] == [second.id]
    studio.review(REV, first.id, "approve")
    assert [c.id for c in studio.queue("approved")] == [first.id]
    assert [c.id for c in studio.queue("all")] == [first.id, second.id]
    counts = dict(zip(*studio.status_frame().to_dict("list").values(), strict=True))
    assert counts == {"pending": 1, "approved": 1, "rejected": 0, "withdrawn": 0}
    today = datetime.now(UTC).date().isoformat()
    assert studio.daily_frame().values.tolist() == [
        [today, "pending", 1], [today, "approved", 1], [today, "rejected", 0],
        [today, "withdrawn", 0],
    ]  # fmt: skip
    with pytest.raises(PermissionDenied, match="needs the reviewer role"):
        studio.review(ANN, second.id, "approve")


def test_annotators_withdraw_only_their_own_corrections(studio: Studio) -> None:
    problem = studio.store.add_problem("I have 2 cats and 3 dogs. How many pets?")
    mine = studio.save_correction(ANN, problem.id, "cot", "2 + 3 = 5. The answer is 5.")
    with pytest.raises(PermissionDenied, match="needs the annotator role"):
        studio.withdraw(VISITOR, mine.id)
    with pytest.raises(ReviewError, match="only ann, who wrote correction"):
        studio.withdraw(BOB, mine.id)
    review = studio.withdraw(ANN, mine.id, "a better one follows")
    assert (review.decision, review.note) == ("withdrawn", "a better one follows")
    assert [c.id for c in studio.queue("withdrawn")] == [mine.id] and studio.queue() == []


def test_export_refuses_until_something_is_approved(tmp_path: Path, tiny_student, eval_sets):
    studio = make_studio(tmp_path, tiny_student, eval_sets)
    with pytest.raises(InputError, match="no correction has been approved"):
        studio.export(ADMIN)


def test_conflicting_annotators_are_listed(studio: Studio) -> None:
    problem = studio.store.add_problem(SVAMP_1, 51, "svamp", "svamp-chal-1")
    studio.save_correction(ANN, problem.id, "eot", SVAMP_1_EOT)
    studio.save_correction(BOB, problem.id, "eot", "price = 76\nans = price - 26")
    html = render.conflicts_html(studio.store.conflicts())
    assert "ann: 51 (pending)" in html and "bob: 50 (pending)" in html and ">51, 50<" in html
    assert "No conflicts" in render.conflicts_html([])


def test_accept_as_is_saves_the_thought_unchanged_and_edits_must_change_it(studio: Studio) -> None:
    state = list(studio.solve(VISITOR, SVAMP_1))[-1]
    assert studio.store.stats().corrections == 0  # pre-filled text is no correction
    with pytest.raises(InputError, match="unchanged"):
        studio.correct(ANN, state, "eot", state.thoughts["eot"].text + "\n")
    with pytest.raises(InputError, match="Solve a question first"):
        studio.correct(ANN, None, "eot", SVAMP_1_EOT)
    # The tiny student's own thoughts never solve, so give it a solvable one to accept.
    state.thoughts["eot"] = record(
        studio.store, state, examine("eot", SVAMP_1_EOT)
    )  # as if the student wrote it
    accepted = studio.correct(ANN, state, "eot", "ignored: the editor text", accept=True)
    assert accepted.corrected_text == accepted.original_text == SVAMP_1_EOT
    assert accepted.generation_id == state.thoughts["eot"].generation_id
    assert accepted.after_answer == 51 and accepted.status == "pending"
    state.thoughts["pot"] = ThoughtView("pot", "", "no_answer", None)
    with pytest.raises(InputError, match="nothing to accept"):
        studio.correct(ANN, state, "pot", "", accept=True)
    state.thoughts["cot"] = ThoughtView("cot", "I do not know.", "no_answer", None)
    with pytest.raises(StoreError, match="does not solve"):
        studio.correct(ANN, state, "cot", "", accept=True)
    assert studio.store.stats().corrections == 1


def _writing(states: list[dict], thought: str) -> list[str]:
    """The texts a client saw of ``thought`` while it was being written."""
    return [
        s["thoughts"][thought]["text"]
        for s in states
        if s["thoughts"].get(thought, {}).get("status") == WRITING
    ]


def test_a_solve_streams_each_thought_as_it_is_written(
    tmp_path: Path, tiny_student, eval_sets
) -> None:
    studio = make_studio(tmp_path, tiny_student, eval_sets, stream_every=0)
    states = [s.to_dict() for s in studio.solve(VISITOR, "Tom has 3 apples and buys 5 more.")]
    final = states[-1]
    assert final["done"] and final["vote"] is not None
    assert not any(s["done"] for s in states[:-1])
    for thought in THOUGHTS:
        seen = _writing(states, thought)
        assert seen and all(final["thoughts"][thought]["text"].startswith(t) for t in seen)
        assert final["thoughts"][thought]["status"] != WRITING
    assert "writing…" in render.badge(ThoughtView("cot", "Tom", WRITING, None, finished=False))
    assert studio.store.stats().generations == 3  # the text being written is never stored


@pytest.mark.parametrize("max_batch", [2, 4])
def test_concurrent_solves_share_batches_and_each_gets_its_own_thoughts(
    max_batch: int, tmp_path: Path, tiny_student, eval_sets
) -> None:
    studio = make_studio(tmp_path, tiny_student, eval_sets, max_batch=max_batch, stream_every=0)
    questions = [p.question for p in studio.eval_sets.sample("multiarith", 6, seed=3)]
    start = threading.Barrier(len(questions))

    def solve(question: str) -> list[dict]:
        start.wait()
        return [s.to_dict() for s in studio.solve(VISITOR, question)]

    with ThreadPoolExecutor(len(questions)) as pool:
        streams = list(pool.map(solve, questions))
    sizes = studio.batcher.batch_sizes
    assert sum(sizes) == len(questions) and 1 < max(sizes) <= max_batch  # some shared one
    for question, states in zip(questions, streams, strict=True):
        final = states[-1]
        assert final["question"] == question and final["done"]
        assert sorted(final["thoughts"]) == ["cot", "eot", "pot"]
        assert all(_writing(states, t) for t in THOUGHTS)  # every request streams, led or not
    generation_ids = {v["generation_id"] for s in streams for v in s[-1]["thoughts"].values()}
    assert len(generation_ids) == 3 * len(questions)


def _held(batcher_of, student) -> tuple[Batcher, threading.Event, threading.Thread]:
    """A batcher whose model is held by a ranking until the returned event is set, so that the
    solves asked for meanwhile wait together."""
    busy, gate = threading.Event(), threading.Event()

    def ranked(student, questions: list[str]) -> list:
        busy.set()
        gate.wait()
        return student.solve_batch(questions)

    batcher = batcher_of(ranked)
    holder = threading.Thread(target=batcher.solutions, args=(student, ["1 + 1?"]))
    holder.start()
    busy.wait()
    return batcher, gate, holder


def _queue(batcher: Batcher, student, question: str, first: list) -> threading.Thread:
    """Ask for ``question`` in a thread that keeps only its first event, then stops reading."""
    events = batcher.events(student, question)
    thread = threading.Thread(target=lambda: first.append(next(events)), daemon=True)
    thread.start()
    while batcher.waiting < 1:
        time.sleep(0.01)
    return thread


def test_a_batch_runs_for_everyone_whatever_one_caller_does(tiny_student) -> None:
    batcher, gate, holder = _held(
        lambda ranked: Batcher(lambda s, qs: s.stream_batch(qs, every=0), ranked, max_batch=2),
        tiny_student,
    )
    first: list = []
    stalled = _queue(batcher, tiny_student, "Tom has 3 apples.", first)
    with ThreadPoolExecutor(1) as pool:
        other = pool.submit(lambda: list(batcher.events(tiny_student, "Ann has 5 pens.")))
        while batcher.waiting < 2:
            time.sleep(0.01)
        gate.set()
        events = other.result(timeout=60)  # while the first caller reads no more
    holder.join()
    stalled.join()
    assert batcher.batch_sizes == [2] and first
    finished = [e for e in events if isinstance(e, ThoughtResult)]
    assert sorted(e.thought for e in finished) == ["cot", "eot", "pot"]


def test_a_failing_batch_tells_every_request_and_frees_the_model(tiny_student) -> None:
    def broken(student, questions: list[str]):
        raise RuntimeError("the engine broke")

    batcher, gate, holder = _held(lambda ranked: Batcher(broken, ranked), tiny_student)
    with ThreadPoolExecutor(2) as pool:
        asked = [
            pool.submit(lambda q=q: list(batcher.events(tiny_student, q))) for q in ("1?", "2?")
        ]
        while batcher.waiting < 2:
            time.sleep(0.01)
        gate.set()
        for future in asked:
            with pytest.raises(RuntimeError, match="the engine broke"):
                future.result(timeout=60)
    holder.join()
    assert batcher.batch_sizes == [2]
    assert len(batcher.solutions(tiny_student, ["3 + 4?"])) == 1  # the model is free again
