"""The student writes three thoughts, the engine runs them, the vote decides.

A tiny model is fine-tuned in the fixture (seconds on CPU) until it writes known targets, so the
tests check real generation, execution and voting; the slow test uses the real SmolLM2 base.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eotd.model_loading import load_model
from eotd.student import GenerationSettings, Progress, Student, ThoughtResult, combine, execute
from eotd.torch_engine import TorchEngine
from tests.eotd.support import APPLES, EGGS
from training.datasets import load_problems


@pytest.fixture(scope="module")
def student(trained: Path) -> Student:
    return Student(
        TorchEngine(load_model(str(trained), None, device="cpu")), GenerationSettings(48)
    )


def test_solve_writes_runs_and_votes_three_thoughts(student: Student) -> None:
    assert str(student.engine.spec).startswith("torch float32 (cpu, ")
    solution = student.solve(APPLES)
    assert [t.thought for t in solution.thoughts] == ["cot", "pot", "eot"]
    assert solution.thought("cot").status == "answered"
    assert solution.thought("pot").status == "ok"
    assert solution.thought("eot").status == "solved"
    assert all(t.answer == 7 and t.finished for t in solution.thoughts)
    assert solution.answer == 7
    assert sorted(solution.vote.supporters) == ["cot", "eot", "pot"]
    assert json.loads(json.dumps(solution.to_dict()))["answer"] == 7


def test_a_failing_program_is_reported_and_outvoted(student: Student) -> None:
    solution = student.solve(EGGS)
    pot = solution.thought("pot")
    assert pot.status == "runtime_error" and pot.answer is None and pot.error
    assert solution.answer == 30
    assert "pot" not in solution.vote.supporters


def test_batch_with_left_padding_matches_one_by_one(student: Student) -> None:
    batch = student.solve_batch([EGGS, APPLES, EGGS], batch_size=4, strategies=["fallback"])
    singles = {q: student.solve(q) for q in (APPLES, EGGS)}
    for solution in batch:
        alone = singles[solution.question]
        assert [t.text for t in solution.thoughts] == [t.text for t in alone.thoughts]
        assert solution.votes["fallback"].answer == alone.answer


def test_solve_iter_yields_every_thought_once(student: Student) -> None:
    results = list(student.solve_iter(APPLES))
    assert sorted(r.thought for r in results) == ["cot", "eot", "pot"]
    assert combine(APPLES, results).answer == 7


def test_stream_shows_each_thought_growing_before_its_result(student: Student) -> None:
    events = list(student.stream(APPLES, every=0))
    results = [e for e in events if isinstance(e, ThoughtResult)]
    assert sorted(r.thought for r in results) == ["cot", "eot", "pot"]
    assert combine(APPLES, results).answer == 7
    for result in results:
        end = events.index(result)
        shown = [e for e in events if isinstance(e, Progress) and e.thought == result.thought]
        assert shown and all(events.index(p) < end for p in shown), "text only after the end"
        assert all(result.text.startswith(p.text) for p in shown)
        counts = [p.new_tokens for p in shown]
        assert counts == sorted(set(counts)) and counts[-1] <= result.new_tokens


def test_sampling_votes_over_k_samples_per_thought(trained: Path) -> None:
    settings = GenerationSettings(48, do_sample=True, num_samples=3, temperature=0.3)
    sampler = Student(TorchEngine(load_model(str(trained), None, device="cpu")), settings)
    solution = sampler.solve(APPLES)
    counts = {name: len(a) for name, a in solution.answers().items()}
    assert counts == {"cot": 3, "pot": 3, "eot": 3}
    assert sorted(t.sample for t in solution.thoughts if t.thought == "pot") == [0, 1, 2]
    assert solution.answer == 7


def test_bad_input_is_refused(student: Student) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        student.solve("   ")
    with pytest.raises(ValueError, match="do_sample"):
        GenerationSettings(num_samples=4)
    with pytest.raises(ValueError, match="unknown thought"):
        execute("xot", "ans = 1")


@pytest.mark.slow
def test_default_smollm2_answers_a_question_end_to_end() -> None:
    student = Student.from_pretrained(device="cpu", max_new_tokens=32)
    solution = student.solve("Sam has 5 pens and gives away 2. How many pens are left?")
    assert [t.thought for t in solution.thoughts] == ["cot", "pot", "eot"]
    assert all(t.text and 0 < t.new_tokens <= 32 for t in solution.thoughts)
    assert solution.thought("pot").status in {
        "ok", "syntax_error", "forbidden", "runtime_error", "timeout", "memory_error", "no_answer"
    }  # fmt: skip


NATALIA = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in "
    "May. How many clips did Natalia sell altogether in April and May?"
)


def _shipped(engine: str) -> Student:
    """The shipped student (base + models/ adapter) on "torch" (float32), "ct2-float32" or
    "ct2-int8"."""
    name, _, precision = engine.partition("-")
    return Student.from_pretrained(engine=name, precision=precision or "float32", device="cpu")


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["torch", "ct2-float32"])
def test_the_shipped_student_solves_an_easy_question_all_three_ways(engine: str) -> None:
    """The float32 engines: the same answers on every CPU this project has run on (AMD EPYC with
    AVX-512/BF16, Intel Xeon with AMX, Intel Xeon with AVX-512 VNNI), unlike int8."""
    student = _shipped(engine)
    assert student.engine.spec.adapter is not None, "models/ must ship the trained adapter"
    solution = student.solve(NATALIA)
    assert [t.status for t in solution.thoughts] == ["answered", "ok", "solved"]
    assert [t.answer for t in solution.thoughts] == [72.0, 72.0, 72.0]
    assert solution.answer == 72.0 and all(t.finished for t in solution.thoughts)


@pytest.mark.slow
def test_the_float32_engines_write_the_same_thoughts() -> None:
    """CTranslate2 float32 against PyTorch float32 on the first GSM8K test problems. Measured on
    300 (Intel Xeon with AVX-512 VNNI): the same text for all 900 thoughts, mean log-probability
    within 1e-5 (``benchmarks.bench_engines``; int8: 108 of 900). One thought of 24 may differ:
    the two compute the same sums in another order, which can tip an exact tie."""
    questions = [p["question"] for p in load_problems("gsm8k", "test").select(range(8))]
    reference = _shipped("torch").solve_batch(questions)
    fast = _shipped("ct2-float32").solve_batch(questions)
    pairs = [
        (a, b)
        for x, y in zip(reference, fast, strict=True)
        for a, b in zip(x.thoughts, y.thoughts, strict=True)
    ]
    assert len(pairs) == 24
    assert sum(a.text == b.text for a, b in pairs) >= 23
    assert sum(a.answer == b.answer for a, b in pairs) >= 23


@pytest.mark.slow
def test_the_int8_engine_stays_within_its_measured_tolerance() -> None:
    """int8 kernels differ between CPUs (Natalia: [72, 72, 72] on Intel Xeon with AMX and with
    AVX-512 VNNI, [72, 168, 6] on AMD EPYC; on 300 GSM8K problems the same answer as float32 for
    21 to 40% of thoughts, accuracy within noise): its thoughts still run, and the chain of
    thought keeps the answer."""
    solution = _shipped("ct2-int8").solve(NATALIA)
    assert solution.thought("cot").answer == 72.0
    assert all(t.finished and t.status != "error" for t in solution.thoughts)
