"""What every engine shares: generation settings, the per-row collector, and the Engine protocol.

An engine (``eotd.torch_engine.TorchEngine``, ``eotd.ct2_engine.CT2Engine``) writes a batch of
prompts, row by row, into a :class:`RowEnds` the caller made: each token as it is written
(``on_step``, for streaming text) and each row once, when it ends (``on_finish``). The caller
(``eotd.student.Student``) decodes and executes; engines know nothing of thoughts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from eotd.verifier import DEFAULT_STRATEGY


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


OnFinish = Callable[[int, list[int], bool, float | None], None]
"""``on_finish(row, tokens, ended, mean_logprob)``: called once per generated row when it ends."""

OnStep = Callable[[int], None]
"""``on_step(row)``: the row has just written one more token (read it from ``RowEnds.tokens``)."""


class RowEnds:
    """Each generated row's tokens and their log-probabilities. ``on_step`` hears of every token
    (from the engine's thread); ``on_finish`` gets each row once, when it ends (``ended``: by an
    end token or a stop string, not by the token limit)."""

    def __init__(self, n: int, on_finish: OnFinish, on_step: OnStep | None = None) -> None:
        self.on_finish = on_finish
        self.on_step = on_step
        self.tokens: list[list[int]] = [[] for _ in range(n)]
        self.logprob_sums = [0.0] * n
        self.steps = [0] * n  # tokens scored, the end token included
        self.done = [False] * n

    def __len__(self) -> int:
        return len(self.tokens)

    def score(self, row: int, logprob: float | None) -> None:
        """Count the log-probability of the token the row just wrote (None: not reported)."""
        if logprob is not None:
            self.logprob_sums[row] += logprob
            self.steps[row] += 1

    def append(self, row: int, token: int) -> None:
        """Keep a written token of the row (an end token is never kept)."""
        self.tokens[row].append(token)
        if self.on_step is not None:
            self.on_step(row)

    def finish(self, row: int, ended: bool) -> None:
        self.done[row] = True
        steps = self.steps[row]
        mean = self.logprob_sums[row] / steps if steps else None
        self.on_finish(row, self.tokens[row], ended, mean)

    def finish_rest(self) -> None:
        for row, done in enumerate(self.done):
            if not done:
                self.finish(row, False)


@dataclass(frozen=True)
class EngineSpec:
    """What writes the thoughts, resolved once at an entry point (``eotd.engines.resolve``):
    printed by the app's Model tab, the evaluation reports and the benchmarks."""

    engine: str  # "torch" or "ct2"
    precision: str  # what the weights compute in: float32, bfloat16, int8_float32, ...
    device: str  # "cpu", "cuda", "mps"
    base: str  # the folder (or hub id) the base is read from
    adapter: str | None  # the adapter folder, None for the base alone
    threads: int = 0  # CPU threads (0 on an accelerator)
    cpu: str = ""  # the CPU's vector instruction sets that matter for the kernels

    def __str__(self) -> str:
        where = self.device
        if self.device == "cpu":
            where += f", {self.threads} thread{'s' * (self.threads != 1)}"
            where += f", {self.cpu}" if self.cpu else ""
        return f"{self.engine} {self.precision} ({where})"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "describe": str(self)}


class Engine(Protocol):
    """Writes continuations of prompts, row by row (see :class:`RowEnds`)."""

    spec: EngineSpec
    tokenizer: Any  # a transformers tokenizer

    def generate_rows(
        self, prompts: Sequence[str], settings: GenerationSettings, rows: RowEnds
    ) -> None:
        """Write ``settings.num_samples`` continuations of each prompt (prompt-major: row
        ``i * k + s`` is sample ``s`` of prompt ``i``) into ``rows``; every row is finished
        when this returns."""
        ...

    def score(
        self, prompts: Sequence[str], texts: Sequence[str], ended: Sequence[bool]
    ) -> list[float | None]:
        """The mean log-probability of each text's tokens after its prompt, with the end token's
        when ``ended`` (as ``generate_rows`` reports it for a greedy row); None for no tokens."""
        ...


def continuation_ids(
    tokenizer: Any, prompts: Sequence[str], texts: Sequence[str], ended: Sequence[bool]
) -> list[tuple[list[int], list[int]]]:
    """Each prompt's token ids and its text's (tokenized apart, as generation appends them), with
    the end token after a text that ``ended``: what an engine's ``score`` reads. Saved texts are
    decoded and stripped, so a re-tokenized text can differ from the generated tokens by leading
    whitespace, and a row cut at a stop string is scored as if it had ended there: the score is
    the generation's mean log-probability to about 1e-3 on most rows, not exactly."""
    if not len(prompts) == len(texts) == len(ended):
        raise ValueError("score needs one text and one ended flag per prompt")
    prompt_ids = tokenizer(list(prompts))["input_ids"]
    text_ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    end = [tokenizer.eos_token_id]
    return [(p, t + end if e else t) for p, t, e in zip(prompt_ids, text_ids, ended, strict=True)]


def mean(values: Sequence[float]) -> float | None:
    """The mean of ``values``; None when there are none."""
    return sum(values) / len(values) if values else None
