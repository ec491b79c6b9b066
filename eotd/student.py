"""The student: writes CoT, PoT and EoT for a question, runs each one, and chooses the answer.

All thoughts of a batch of questions go through one batched ``generate`` call (left padding), each
row stopping at its own end token. Greedy by default; with ``num_samples`` > 1 and sampling on, each
thought is sampled k times and the vote runs over every sample (self-consistency).
"""

from __future__ import annotations

import importlib.util
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import AutoConfig, LogitsProcessor, LogitsProcessorList
from transformers.generation.streamers import BaseStreamer

from eotd import extract_answer, run_program, solve_equations
from eotd.model_loading import (
    LoadedModel,
    end_token_ids,
    load_model,
    resolve_device,
    resolve_sources,
)
from eotd.prompts import THOUGHTS, build_prompt
from eotd.verifier import DEFAULT_STRATEGY, choose
from eotd.vote import Vote

if TYPE_CHECKING:
    from eotd.ct2_engine import CT2Model

ENGINES = ("torch", "ct2")


def resolve_engine(engine: str = "auto", device: str = "auto", base: str | None = None) -> str:
    """The engine to load ``base`` with. "auto": ``$EOTD_ENGINE`` if set; else ct2 for a causal
    model on the CPU when CTranslate2 is installed (several times faster there; models/README.md
    compares the two engines' accuracy), torch otherwise. Any other value must be in ENGINES."""
    if engine == "auto":
        engine = os.environ.get("EOTD_ENGINE") or "auto"
    if engine == "auto":
        on_cpu = resolve_device(device).type == "cpu"
        if on_cpu and importlib.util.find_spec("ctranslate2") is not None:
            source, _ = resolve_sources(base, None)
            causal = not AutoConfig.from_pretrained(source).is_encoder_decoder
            return "ct2" if causal else "torch"
        return "torch"
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; use one of {ENGINES}")
    if engine == "ct2" and resolve_device(device).type != "cpu":
        raise ValueError("the ct2 engine runs on the CPU; use engine='torch' on a GPU")
    return engine


def load_engine(
    base: str | None = None,
    adapter: str | Path | None = "default",
    *,
    device: str = "auto",
    dtype: str = "auto",
    engine: str = "auto",
    threads: int | None = None,
    quantization: str = "int8",
) -> LoadedModel | CT2Model:
    """Load a base + adapter (as ``load_model`` reads them) for a :class:`Student`.

    ``engine``: "torch" (transformers' ``generate``, in ``dtype``), "ct2" (CTranslate2, CPU
    only, weights in ``quantization``, see ``eotd.ct2_engine``), or "auto" (see
    ``resolve_engine``)."""
    if resolve_engine(engine, device, base) == "ct2":
        from eotd.ct2_engine import load_ct2

        return load_ct2(base, adapter, quantization=quantization, threads=threads)
    return load_model(base, adapter, device=device, dtype=dtype, threads=threads)


@dataclass
class GenerationSettings:
    """How the student writes its thoughts."""

    max_new_tokens: int = 256
    do_sample: bool = False
    num_samples: int = 1  # samples per thought (self-consistency when > 1; needs do_sample)
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 50  # sample from the k likeliest tokens (0: all); transformers' default
    # A thought that starts a new "Question:" has finished its own answer (matters for bases that
    # were never taught to stop).
    stop_strings: tuple[str, ...] = ("\nQuestion:",)
    execution_timeout: float = 5.0  # seconds per program / equation system
    strategy: str = DEFAULT_STRATEGY  # how the answer is chosen, see eotd.verifier.choose

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        if self.num_samples < 1:
            raise ValueError("num_samples must be at least 1")
        if self.num_samples > 1 and not self.do_sample:
            raise ValueError("num_samples > 1 needs do_sample=True (greedy samples are identical)")


@dataclass
class ThoughtResult:
    """One written thought, executed: CoT read, PoT run, EoT solved."""

    thought: str
    text: str
    answer: float | None
    status: str  # CoT: "answered"/"no_answer"; PoT: run_program's; EoT: solve_equations'
    error: str | None = None
    line: int | None = None  # EoT: 1-based line the solver complained about
    sample: int = 0
    new_tokens: int = 0
    finished: bool = True  # False when the thought ran into max_new_tokens
    values: dict[str, float] = field(default_factory=dict)  # EoT: solved; PoT: final variables
    stdout: str = ""  # PoT: what the program printed
    # The model's mean log-probability per written token (its end token included): how sure it
    # was of the text. None where unknown (a corrected text, or predictions saved before it).
    mean_logprob: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Solution:
    """The student's answer to one question: every thought (and sample) plus the vote."""

    question: str
    thoughts: list[ThoughtResult]
    vote: Vote
    seconds: float = 0.0
    votes: dict[str, Vote] = field(default_factory=dict)  # extra strategies, when asked for

    @property
    def answer(self) -> float | None:
        return self.vote.answer

    def thought(self, name: str) -> ThoughtResult:
        """The first (greedy) result of one thought."""
        for t in self.thoughts:
            if t.thought == name:
                return t
        raise KeyError(f"this solution has no {name!r} thought")

    def answers(self) -> dict[str, list[float | None]]:
        """Every sample's answer, by thought: what the vote counts."""
        return {name: [t.answer for t in self.thoughts if t.thought == name] for name in THOUGHTS}

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "answer": self.answer,
            "thoughts": [t.to_dict() for t in self.thoughts],
            "vote": self.vote.to_dict(),
            "votes": {name: v.to_dict() for name, v in self.votes.items()},
            "seconds": self.seconds,
        }


def execute(thought: str, text: str, timeout: float = 5.0) -> ThoughtResult:
    """Turn a written thought into an answer with the engine."""
    if thought == "cot":
        answer = extract_answer(text)
        if answer is None:
            return ThoughtResult(
                thought, text, None, "no_answer", 'no final answer; end with "The answer is N."'
            )
        return ThoughtResult(thought, text, answer, "answered")
    if thought == "pot":
        p = run_program(text, timeout=timeout)
        return ThoughtResult(
            thought, text, p.answer, p.status, p.error, values=p.values, stdout=p.stdout
        )
    if thought == "eot":
        r = solve_equations(text, timeout=timeout)
        return ThoughtResult(
            thought, text, r.answer, r.status, r.error, r.line, values=dict(r.values)
        )
    raise ValueError(f"unknown thought {thought!r}")


def combine(
    question: str, results: Sequence[ThoughtResult], strategy: str = DEFAULT_STRATEGY
) -> Solution:
    """Choose the answer of one question's thoughts (see ``eotd.verifier.choose``)."""
    ordered = sorted(results, key=lambda t: (THOUGHTS.index(t.thought), t.sample))
    return Solution(question, ordered, choose(question, ordered, strategy))


@dataclass
class _Row:
    """One generation row: a question's thought (and sample)."""

    question: int
    thought: str
    prompt: str
    sample: int = 0


OnFinish = Callable[[int, list[int], bool, float | None], None]
"""``on_finish(row, tokens, ended, mean_logprob)``: called once per generated row when it ends."""


class RowEnds:
    """Each generated row's tokens and their log-probabilities, handed to ``on_finish`` once,
    when the row ends (``ended``: by an end token or a stop string, not by the token limit)."""

    def __init__(self, n: int, on_finish: OnFinish) -> None:
        self.on_finish = on_finish
        self.tokens: list[list[int]] = [[] for _ in range(n)]
        self.logprob_sums = [0.0] * n
        self.steps = [0] * n  # tokens scored, the end token included
        self.done = [False] * n

    def score(self, row: int, logprob: float | None) -> None:
        """Count the log-probability of the token the row just wrote (None: not reported)."""
        if logprob is not None:
            self.logprob_sums[row] += logprob
            self.steps[row] += 1

    def finish(self, row: int, ended: bool) -> None:
        self.done[row] = True
        steps = self.steps[row]
        mean = self.logprob_sums[row] / steps if steps else None
        self.on_finish(row, self.tokens[row], ended, mean)

    def finish_rest(self) -> None:
        for row, done in enumerate(self.done):
            if not done:
                self.finish(row, False)


class _StepLogprobs(LogitsProcessor):
    """Keeps each step's log-probabilities (the model's own, before sampling warpers, which
    ``generate`` applies after custom processors) for the streamer to read the chosen tokens'."""

    def __init__(self) -> None:
        self.last: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.last = torch.log_softmax(scores.float(), dim=-1)
        return scores


class _FinishStreamer(BaseStreamer):
    """Receives each decoding step's tokens from ``generate`` and reports rows as they end."""

    def __init__(self, end_ids: set[int], on_finish: OnFinish, logprobs: _StepLogprobs):
        self.end_ids = end_ids
        self.on_finish = on_finish
        self.logprobs = logprobs
        self.rows: RowEnds | None = None
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # the first call carries the prompts
            self.prompt_seen = True
            return
        if self.rows is None:
            self.rows = RowEnds(value.numel(), self.on_finish)
        tokens = value.reshape(-1)
        step = self.logprobs.last
        chosen = None if step is None else step.gather(1, tokens[:, None].to(step.device))
        scores = [None] * len(tokens) if chosen is None else chosen.reshape(-1).tolist()
        for row, token in enumerate(tokens.tolist()):
            if self.rows.done[row]:
                continue
            self.rows.score(row, scores[row])
            if token in self.end_ids:
                self.rows.finish(row, True)
            else:
                self.rows.tokens[row].append(token)

    def end(self) -> None:
        if self.rows is not None:
            self.rows.finish_rest()


class Student:
    """A loaded student model that answers math word problems three ways."""

    def __init__(self, loaded: LoadedModel | CT2Model, settings: GenerationSettings | None = None):
        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        self.settings = settings or GenerationSettings()
        self.end_ids = end_token_ids(self.tokenizer)
        self._lock = threading.Lock()  # one generate at a time (e.g. concurrent app requests)

    @classmethod
    def from_pretrained(
        cls,
        base: str | None = None,
        adapter: str | Path | None = "default",
        *,
        device: str = "auto",
        dtype: str = "auto",
        engine: str = "auto",
        **settings,
    ) -> Student:
        """Load a base (+ adapter) on an engine (see ``load_engine``) with generation settings."""
        loaded = load_engine(base, adapter, device=device, dtype=dtype, engine=engine)
        return cls(loaded, GenerationSettings(**settings))

    @property
    def engine(self) -> str:
        """What writes the thoughts, e.g. "torch float32 (cpu)" or "ct2 int8 (cpu)"."""
        name = "torch" if isinstance(self.loaded, LoadedModel) else "ct2"
        dtype = str(self.loaded.dtype).removeprefix("torch.")
        return f"{name} {dtype} ({self.loaded.device.type})"

    # -- generation ---------------------------------------------------------------------------

    def _generate_kwargs(self, settings: GenerationSettings) -> dict:
        kwargs = {
            "max_new_tokens": settings.max_new_tokens,
            "eos_token_id": self.end_ids,
            "pad_token_id": self.tokenizer.pad_token_id,
            "do_sample": settings.do_sample,
            "num_return_sequences": settings.num_samples,
        }
        if settings.do_sample:
            kwargs.update(
                temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k
            )
        else:  # silence the model's default sampling parameters
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if settings.stop_strings:
            kwargs.update(stop_strings=list(settings.stop_strings), tokenizer=self.tokenizer)
        return kwargs

    def _decode(self, tokens: Sequence[int]) -> str:
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        for stop in self.settings.stop_strings:
            if stop in text:
                text = text[: text.index(stop)]
        return text.strip()

    @torch.inference_mode()
    def _generate_rows(
        self, prompts: Sequence[str], settings: GenerationSettings, on_finish: OnFinish
    ) -> None:
        """One batched ``generate`` over ``prompts``; ``on_finish`` (see ``OnFinish``) per row.

        Rows are prompt-major: row ``i * num_samples + s`` is sample ``s`` of prompt ``i``.
        """
        if not isinstance(self.loaded, LoadedModel):  # the CTranslate2 engine
            with self._lock:
                self.loaded.generate_rows(prompts, settings, on_finish)
            return
        enc = self.tokenizer(list(prompts), return_tensors="pt", padding=True)
        enc = {k: v.to(self.loaded.device) for k, v in enc.items()}
        # Rows that stopped on a stop string are padded afterwards: the pad token ends them too.
        ends = {*self.end_ids, self.tokenizer.pad_token_id}
        logprobs = _StepLogprobs()
        streamer = _FinishStreamer(ends, on_finish, logprobs)
        with self._lock:
            self.loaded.model.generate(
                **enc,
                streamer=streamer,
                logits_processor=LogitsProcessorList([logprobs]),
                **self._generate_kwargs(settings),
            )

    def generate(self, prompts: Sequence[str]) -> list[tuple[str, int, bool]]:
        """Write a continuation for each prompt: (text, new tokens, ended by an end token)."""
        out: dict[int, tuple[str, int, bool]] = {}

        def keep(row: int, tokens: list[int], ended: bool, _: float | None) -> None:
            out[row] = (self._decode(tokens), len(tokens), ended)

        self._generate_rows(prompts, self.settings, keep)
        return [out[i] for i in range(len(out))]

    # -- answering ----------------------------------------------------------------------------

    def _rows(self, questions: Sequence[str], thoughts: Sequence[str]) -> list[_Row]:
        for question in questions:
            if not isinstance(question, str) or not question.strip():
                raise ValueError("every question must be a non-empty string")
        return [
            _Row(q, t, build_prompt(question, t))
            for q, question in enumerate(questions)
            for t in thoughts
        ]

    def _run_batch(self, rows: Sequence[_Row]) -> Iterator[tuple[_Row, ThoughtResult]]:
        """Generate ``rows`` in one batch, yielding each executed thought as soon as it ends."""
        k = self.settings.num_samples
        finished: queue.Queue = queue.Queue()
        failure: list[BaseException] = []

        def on_finish(index: int, tokens: list[int], ended: bool, logprob: float | None) -> None:
            finished.put((index, tokens, ended, logprob))

        def work() -> None:
            try:
                self._generate_rows([r.prompt for r in rows], self.settings, on_finish)
            except BaseException as exc:  # re-raised in the caller's thread
                failure.append(exc)
            finally:
                finished.put(None)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        while (item := finished.get()) is not None:
            index, tokens, ended, logprob = item
            row = rows[index // k]
            result = execute(row.thought, self._decode(tokens), self.settings.execution_timeout)
            result.sample, result.new_tokens, result.finished = index % k, len(tokens), ended
            result.mean_logprob = logprob
            yield row, result
        thread.join()
        if failure:
            raise failure[0]

    def solve_iter(
        self, question: str, thoughts: Sequence[str] = THOUGHTS
    ) -> Iterator[ThoughtResult]:
        """Yield each thought's executed result as soon as that thought finishes writing.

        All thoughts share one batched ``generate``; use ``combine`` on the results for the vote.
        """
        for _, result in self._run_batch(self._rows([question], thoughts)):
            yield result

    def solve(self, question: str) -> Solution:
        """Answer one question: three thoughts in one batch, each executed, then the vote."""
        return self.solve_batch([question])[0]

    def solve_batch(
        self,
        questions: Sequence[str],
        batch_size: int | None = None,
        strategies: Sequence[str] = (),
        progress: Callable[[int], None] | None = None,
    ) -> list[Solution]:
        """Answer many questions. ``batch_size`` caps the rows (question x thought) per
        ``generate``; None puts everything in one. Rows are grouped by thought and prompt length
        so that a batch's rows end at similar lengths. ``strategies`` adds extra votes to each
        solution; ``progress(n)`` is called with the number of rows just finished."""
        started = time.perf_counter()
        rows = self._rows(questions, THOUGHTS)
        rows.sort(key=lambda r: (THOUGHTS.index(r.thought), len(r.prompt)))
        size = batch_size or len(rows) or 1
        results: list[list[ThoughtResult]] = [[] for _ in questions]
        for start in range(0, len(rows), size):
            for row, result in self._run_batch(rows[start : start + size]):
                results[row.question].append(result)
                if progress is not None:
                    progress(1)
        seconds = (time.perf_counter() - started) / max(len(questions), 1)
        solutions = []
        for question, found in zip(questions, results, strict=True):
            solution = combine(question, found, self.settings.strategy)
            solution.seconds = seconds
            solution.votes = {s: choose(question, solution.thoughts, s) for s in strategies}
            solutions.append(solution)
        return solutions
