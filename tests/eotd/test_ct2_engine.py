"""The CTranslate2 engine writes what the PyTorch engine writes, and caches its conversion.

The tiny student (trained on student_support.py's rows) is converted for real; test_student.py
runs the shipped student on both engines.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import ctranslate2
import pytest
from transformers import T5Config

from eotd import ct2_engine
from eotd.ct2_engine import load_ct2
from eotd.engines import CT2_PRECISION, resolve
from eotd.model_loading import cpu_features, load_model
from eotd.prompts import build_prompt
from eotd.student import GenerationSettings, Progress, Student, ThoughtResult
from eotd.torch_engine import TorchEngine
from tests.eotd.support import APPLES, EGGS


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EOTD_CACHE_DIR", str(tmp_path / "cache"))


def _pair(trained: Path, quantization: str = "int8", **settings) -> tuple[Student, Student]:
    """The same student and settings on both engines."""
    torch_student = Student(TorchEngine(load_model(str(trained), None, device="cpu")),
                            GenerationSettings(**settings))  # fmt: skip
    ct2_student = Student(load_ct2(str(trained), None, quantization=quantization),
                          GenerationSettings(**settings))  # fmt: skip
    return torch_student, ct2_student


@pytest.mark.parametrize("quantization", ["int8", "float32"])
def test_ct2_writes_runs_and_votes_like_torch(trained: Path, quantization: str) -> None:
    torch_student, ct2_student = _pair(trained, quantization, max_new_tokens=48)
    for question in (APPLES, EGGS):
        want, got = torch_student.solve(question), ct2_student.solve(question)
        assert [t.text for t in got.thoughts] == [t.text for t in want.thoughts]
        assert [t.status for t in got.thoughts] == [t.status for t in want.thoughts]
        assert [t.new_tokens for t in got.thoughts] == [t.new_tokens for t in want.thoughts]
        assert all(t.finished for t in got.thoughts)
        assert got.answer == want.answer
        tolerance = 1e-3 if quantization == "float32" else 0.2  # mean log-prob per token
        for mine, theirs in zip(got.thoughts, want.thoughts, strict=True):
            assert theirs.mean_logprob is not None and theirs.mean_logprob <= 0
            assert mine.mean_logprob == pytest.approx(theirs.mean_logprob, abs=tolerance)
    assert ct2_student.solve(APPLES).answer == 7


def test_both_engines_score_saved_text_as_generation_did(trained: Path) -> None:
    """Reading a saved thought again gives the mean log-probability its greedy run reported, so
    predictions saved before that field existed can be given it without writing them again."""
    torch_student, ct2_student = _pair(trained, "float32", max_new_tokens=48)
    pairs = [(q, t) for q in (APPLES, EGGS) for t in torch_student.solve(q).thoughts]
    prompts = [build_prompt(q, t.thought) for q, t in pairs]
    written = [t for _, t in pairs]
    texts, ended = [t.text for t in written], [t.finished for t in written]
    for student in (torch_student, ct2_student):
        scored = student.engine.score(prompts, texts, ended)
        assert scored == pytest.approx([t.mean_logprob for t in written], abs=1e-3)
    # A text the student would not write scores lower; an empty unfinished one has no tokens.
    odd = torch_student.engine.score(prompts[:1], ["banana " * 5], [True])[0]
    assert odd < written[0].mean_logprob - 1
    assert ct2_student.engine.score(prompts[:1], [""], [False]) == [None]
    with pytest.raises(ValueError, match="one text and one ended flag per prompt"):
        ct2_student.engine.score(prompts, texts[:1], ended)


def test_ct2_streams_the_text_torch_writes(trained: Path) -> None:
    torch_student, ct2_student = _pair(trained, "float32", max_new_tokens=48)
    want = {t.thought: t.text for t in torch_student.solve(APPLES).thoughts}
    events = list(ct2_student.stream(APPLES, every=0))
    for name, text in want.items():
        shown = [e.text for e in events if isinstance(e, Progress) and e.thought == name]
        assert shown and all(text.startswith(s) for s in shown)
    assert {e.thought: e.text for e in events if isinstance(e, ThoughtResult)} == want


def test_ct2_batches_rows_that_end_at_different_steps(trained: Path) -> None:
    _, ct2_student = _pair(trained, max_new_tokens=48)
    batch = ct2_student.solve_batch([EGGS, APPLES, EGGS], batch_size=4)
    assert [s.answer for s in batch] == [30, 7, 30]
    assert [len(s.thoughts) for s in batch] == [3, 3, 3]


def test_ct2_cuts_at_max_new_tokens_and_at_stop_strings_like_torch(trained: Path) -> None:
    torch_student, ct2_student = _pair(trained, max_new_tokens=3)
    want, got = torch_student.solve(APPLES), ct2_student.solve(APPLES)
    assert [(t.text, t.new_tokens, t.finished) for t in got.thoughts] == [
        (t.text, t.new_tokens, t.finished) for t in want.thoughts
    ]
    assert not any(t.finished for t in got.thoughts)

    torch_student, ct2_student = _pair(trained, max_new_tokens=48, stop_strings=("bought",))
    want, got = torch_student.solve(APPLES), ct2_student.solve(APPLES)
    pot = got.thought("pot")
    assert pot.text == want.thought("pot").text == "apples = 3"
    assert pot.finished and pot.new_tokens == want.thought("pot").new_tokens

    # A stop string that begins in the prompt (which ends "step.\n") stops at once, as in torch.
    torch_student, ct2_student = _pair(trained, max_new_tokens=48, stop_strings=(".\n3",))
    want, got = torch_student.solve(APPLES), ct2_student.solve(APPLES)
    cot = got.thought("cot")
    assert (cot.new_tokens, cot.finished) == (want.thought("cot").new_tokens, True)
    assert cot.new_tokens == 1  # "3"


@pytest.mark.parametrize("engine", ["torch", "ct2"])
def test_sampling_honours_top_k_on_both_engines(trained: Path, engine: str) -> None:
    def texts(**settings) -> list[str]:
        student = Student.from_pretrained(
            str(trained), None, engine=engine, device="cpu", max_new_tokens=24, **settings
        )
        return [t.text for t in student.solve(APPLES).thoughts]

    greedy = texts()
    assert texts(do_sample=True, temperature=5.0, top_k=1) == greedy  # one candidate: greedy
    assert texts(do_sample=True, temperature=5.0, top_k=0) != greedy  # every token: noise


def test_ct2_samples_k_per_thought(trained: Path) -> None:
    settings = GenerationSettings(48, do_sample=True, num_samples=3, temperature=0.3)
    sampler = Student(load_ct2(str(trained), None), settings)
    solution = sampler.solve(APPLES)
    assert {name: len(a) for name, a in solution.answers().items()} == {
        "cot": 3, "pot": 3, "eot": 3
    }  # fmt: skip
    assert sorted(t.sample for t in solution.thoughts if t.thought == "eot") == [0, 1, 2]
    assert solution.answer == 7


@pytest.mark.stress
def test_conversion_is_cached_per_model_and_redone_when_it_changes(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    real_convert = ct2_engine.convert

    def counting(loaded, target, quantization="int8"):
        calls.append(target)
        return real_convert(loaded, target, quantization)

    monkeypatch.setattr(ct2_engine, "convert", counting)
    first = load_ct2(str(trained), None)
    again = load_ct2(str(trained), None)
    assert len(calls) == 1 and first.folder == again.folder
    assert (first.folder / "model.bin").is_file()
    assert not list(first.folder.parent.glob("*.tmp*")), "no half-converted folder is left"

    changed = shutil.copytree(trained, tmp_path / "changed")
    other = load_ct2(str(changed), None)
    assert len(calls) == 2 and other.folder != first.folder  # another model (folder)
    (changed / "generation_config.json").write_text('{"max_length": 64}')
    edited = load_ct2(str(changed), None)
    assert len(calls) == 3 and edited.folder != other.folder
    assert not other.folder.exists() and first.folder.exists()  # the stale copy is pruned
    other = edited
    ints = load_ct2(str(trained), None, quantization="int8")  # first: float32, the default
    assert len(calls) == 4 and ints.folder != first.folder
    assert (first.spec.precision, ints.spec.precision) == ("float32", "int8_float32")
    (changed / "README.md").write_text("a card")  # not a model file: the same conversion
    (changed / "eval").mkdir()
    (changed / "eval" / "metrics.json").write_text("{}")
    assert load_ct2(str(changed), None).folder == other.folder and len(calls) == 4


def test_a_failed_conversion_leaves_nothing_behind(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ctranslate2.converters import TransformersConverter

    def fail(self, output_dir, *args, **kwargs):
        Path(output_dir).mkdir(parents=True)
        (Path(output_dir) / "model.bin").write_text("half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(TransformersConverter, "convert", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        load_ct2(str(trained), None)
    assert not list((tmp_path / "cache").rglob("model.bin"))
    assert not list((tmp_path / "cache").rglob("*.tmp*"))


def test_eotd_quantize_does_not_reach_the_conversion(
    trained: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EOTD_QUANTIZE", "int8")  # PyTorch's int8 for the torch engine only
    student = Student(load_ct2(str(trained), None), GenerationSettings(48))
    assert student.solve(APPLES).answer == 7


def test_auto_picks_ct2_for_a_causal_model_on_the_cpu_and_torch_elsewhere(
    trained: Path, tmp_path: Path
) -> None:
    spec = resolve("auto", device="cpu", base=str(trained), adapter=None)
    assert (spec.engine, spec.precision, spec.device, spec.adapter) == (
        "ct2", CT2_PRECISION, "cpu", None
    )  # fmt: skip
    assert resolve("auto", device="meta", base=str(trained)).engine == "torch"  # not a CPU
    seq2seq = tmp_path / "t5"
    T5Config(d_model=8, d_kv=4, d_ff=8, num_layers=1, num_heads=2).save_pretrained(seq2seq)
    assert resolve("auto", device="cpu", base=str(seq2seq)).engine == "torch"
    assert resolve("torch", device="cpu", base=str(trained)).precision == "float32"
    assert resolve("torch", "bf16", "cpu", str(trained)).precision == "bfloat16"


def test_the_engine_says_what_runs_and_bad_settings_are_refused(trained: Path) -> None:
    chosen = Student.from_pretrained(
        str(trained), None, engine="ct2", precision="int8", device="cpu", threads=1,
        max_new_tokens=8,
    )  # fmt: skip
    spec = chosen.engine.spec
    assert (spec.engine, spec.precision, spec.threads) == ("ct2", "int8_float32", 1)
    assert str(spec) == f"ct2 int8_float32 (cpu, 1 thread, {cpu_features()})"
    assert chosen.solve(APPLES).thoughts
    with pytest.raises(ValueError, match="unknown engine"):
        resolve("onnx", base=str(trained))
    with pytest.raises(ValueError, match="runs on the CPU"):
        resolve("ct2", device="meta", base=str(trained))
    with pytest.raises(ValueError, match="unknown quantization"):
        resolve("ct2", "int3", "cpu", str(trained))
    with pytest.raises(ValueError, match="float type"):
        resolve("torch", "int8", "cpu", str(trained))
    if "bfloat16" in ctranslate2.get_supported_compute_types("cpu"):  # AVX512-BF16 or AMX
        assert resolve("ct2", "bfloat16", "cpu", str(trained)).precision == "bfloat16"
    else:  # refused before a minute of conversion
        with pytest.raises(ValueError, match="cannot compute bfloat16"):
            resolve("ct2", "bfloat16", "cpu", str(trained))
    with pytest.raises(ValueError, match="unknown quantization"):
        load_ct2(str(trained), None, quantization="int3")
