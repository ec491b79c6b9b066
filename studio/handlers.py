"""The app's handlers as plain Python: the UI events and the named API endpoints both call these.

:class:`Studio` owns the store, the evaluation sets and the one loaded student. The student is
loaded once (the promoted model version when there is one, else the configured base + adapter)
and replaced only when an admin switches the model version.

Every method takes the acting user (:meth:`Studio.actor` resolves it from the request's session)
and checks the user's role before it does anything (``db.access``), so the UI, the named API, a
client library and a raw queue call all meet the same guard; each state change is audited by the
store in the same transaction.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from db import APPROVED, REJECTED, Correction, ModelVersion, Review, Store
from db import audit as audit_log
from db.access import Actor, require
from db.models import STATUSES
from db.settings import StoreSettings
from eotd.prompts import THOUGHTS
from studio import active, queries
from studio.batching import Batcher
from studio.examples import EvalSets
from studio.identity import Access, Mode
from studio.limits import RateLimiter
from studio.solving import (
    InputError,
    ProblemRef,
    SolveState,
    ThoughtView,
    check_question,
    examine,
    store_problem,
    stream_solve,
)

MAX_THOUGHT_CHARS = 10_000
MAX_NOTE_CHARS = 2_000
MAX_RANK = 64  # problems ranked in one request
STREAM_EVERY = 0.1  # seconds between updates of the text being written (the first comes at once)
EXPORT_ZIPS_KEEP_S = 3600  # an export's zip stays downloadable this long
DECISIONS = {"approve": APPROVED, "approved": APPROVED, "reject": REJECTED, "rejected": REJECTED}


def _on_gpu(fn: Callable) -> Callable:
    """``spaces.GPU`` when running on a Hugging Face ZeroGPU Space, else ``fn`` unchanged."""
    try:
        import spaces
    except ImportError:
        return fn
    return spaces.GPU(fn)


@_on_gpu
def write_thoughts(student: Any, questions: list[str], every: float) -> Iterator[tuple[int, Any]]:
    """The student's three thoughts for each of ``questions`` in one batched generate: their
    text as it is written (at most every ``every`` s), then each one written and run (see
    ``Student.stream_batch``)."""
    yield from student.stream_batch(questions, every)


@_on_gpu
def write_batch(student: Any, questions: list[str]) -> list:
    """The student's solutions to many questions in one batched call."""
    return student.solve_batch(questions)


@dataclass
class ModelInfo:
    """The model being served: its registered version (if any), base and adapter."""

    name: str
    base: str
    adapter: str | None
    version: ModelVersion | None = None


class Studio:
    """Handlers over one store and one student.

    ``student`` may be given ready-made (tests pass a tiny model); otherwise it is loaded on
    first use (see :meth:`student`) with :meth:`eotd.student.Student.from_pretrained`.
    Concurrent solves share batched generate calls of up to ``max_batch`` questions.
    Exports go to ``export_dir`` (the app passes its data dir's ``exports``; default
    ``var/exports``).
    """

    def __init__(
        self,
        store: Store,
        student: Any | None = None,
        *,
        base: str | None = None,
        adapter: str | None = "default",  # as eotd.model_loading.load_model reads it
        max_new_tokens: int = 256,
        eval_sets: EvalSets | None = None,
        export_dir: str | Path | None = None,
        timeout: float = 5.0,
        max_batch: int = 16,
        engine: str = "auto",
        precision: str = "auto",
        access: Access | None = None,
        limits: RateLimiter | None = None,
        stream_every: float = STREAM_EVERY,
    ) -> None:
        self.store = store
        self.access = access or Access()
        if self.access.mode is Mode.LOCAL:  # one person, who reviews their own corrections
            store.allow_self_review = True
            limits = limits or RateLimiter({})
        self.limits = limits or RateLimiter()
        self.engine, self.precision = engine, precision
        self.eval_sets = eval_sets or EvalSets()
        self.export_dir = Path(export_dir or StoreSettings().data_dir / "exports")
        self.timeout = timeout
        self.max_new_tokens = max_new_tokens
        self._base, self._adapter = base, adapter
        self._student = student
        self._info: ModelInfo | None = None
        if student is not None:
            self._info = _info_of(student)
        self._lock = threading.Lock()
        self.batcher = Batcher(
            lambda student, questions: write_thoughts(student, questions, stream_every),
            write_batch,
            max_batch,
        )

    def actor(self, request: Any | None) -> Actor:
        """The acting user of a ``gr.Request`` (see ``studio.identity``)."""
        return self.access.actor(self.store, request)

    def _allow(self, actor: Actor, action: str) -> None:
        """The role check, then the rate limit, of ``actor`` doing ``action``."""
        require(actor, action)
        self.limits.hit(actor.key, action)

    # ------------------------------------------------------------------------------ model

    def load_student(self, base: str, adapter: str | None) -> Any:
        from eotd.student import Student

        return Student.from_pretrained(
            base, adapter, engine=self.engine, precision=self.precision,
            max_new_tokens=self.max_new_tokens,
        )  # fmt: skip

    def student(self) -> Any:
        """The served student, loaded once: ``base`` + ``adapter`` when a base was given, else
        the promoted model version, else the default base + adapter."""
        with self._lock:
            if self._student is None:
                version = self.store.promoted_model_version() if self._base is None else None
                if version is not None:
                    self._student = self.load_student(version.base_model, version.adapter_path)
                    self._info = ModelInfo(
                        version.name, version.base_model, version.adapter_path, version
                    )
                else:
                    self._student = self.load_student(self._base or "default", self._adapter)
                    self._info = _info_of(self._student)
            return self._student

    def model_info(self) -> ModelInfo:
        self.student()
        assert self._info is not None
        return self._info

    def switch_model(self, actor: Actor, version_id: int) -> ModelInfo:
        """Serve the registered model version ``version_id`` from now on (not promoted)."""
        require(actor, "serve_model")
        version = next((v for v in self.store.model_versions() if v.id == version_id), None)
        if version is None:
            raise InputError(f"there is no model version #{version_id}")
        student = self.load_student(version.base_model, version.adapter_path)
        before = self._info.name if self._info else None  # never load a model just to name it
        with self._lock:
            self._student = student
            self._info = ModelInfo(version.name, version.base_model, version.adapter_path, version)
        self.store.transaction(
            lambda s: audit_log.record(s, actor, "model.serve", f"model_version#{version.id}",
                                       {"served": before}, {"served": version.name})
        )  # fmt: skip
        return self._info

    def promote(self, actor: Actor, version_id: int) -> ModelVersion:
        """Make ``version_id`` the version the app loads at start."""
        require(actor, "promote_model")
        return self.store.promote(version_id, actor=actor)

    # ------------------------------------------------------------------------------ solve

    def solve(self, actor: Actor, question: str | None) -> Iterator[SolveState]:
        """Solve ``question`` with all three thoughts; yield the state when the problem is
        stored, after each thought and with the vote. Every thought is recorded."""
        question = check_question(question)
        self._allow(actor, "solve")
        problem = self.eval_sets.lookup(question)
        student = self.student()
        info = self.model_info()
        state = SolveState(
            store_problem(self.store, problem),
            problem,
            model_version_id=info.version.id if info.version else None,
            model_name=info.name,
        )
        yield state
        events = self.batcher.events(student, problem.question)
        yield from stream_solve(events, self.store, state)

    def check(self, actor: Actor, thought: str, text: str | None) -> ThoughtView:
        """Run the engine on a (corrected) thought: values and answer, or the error and line."""
        text = _thought_text(thought, text)
        self._allow(actor, "check")
        return examine(thought, text, self.timeout)

    # ------------------------------------------------------------------------- correcting

    def save_correction(
        self,
        actor: Actor,
        problem_id: int,
        thought: str,
        corrected_text: str,
        generation_id: int | None = None,
        allow_unsolved: bool = False,
    ) -> Correction:
        """Store a correction by ``actor`` (solved once, by the store; raises
        ``CorrectionRejected`` when it does not solve unless ``allow_unsolved``)."""
        corrected_text = _thought_text(thought, corrected_text)
        self._allow(actor, "save_correction")
        return self.store.add_correction(
            thought,
            corrected_text,
            actor,
            problem_id=problem_id,
            generation_id=generation_id,
            allow_unsolved=allow_unsolved,
        )

    def correct(
        self,
        actor: Actor,
        state: SolveState | None,
        thought: str,
        text: str,
        allow_unsolved: bool = False,
        accept: bool = False,
    ) -> Correction:
        """Save an edit of the student's ``thought`` in a finished solve, or with ``accept`` the
        thought exactly as the student wrote it. Unsaved or unchanged text is never a correction."""
        require(actor, "save_correction")
        if state is None or not state.done:
            raise InputError("Solve a question first (Solve or Active learning tab).")
        view = state.thoughts.get(thought)
        original = view.text if view else ""
        if accept:
            if not original.strip():
                raise InputError("The student wrote nothing here; there is nothing to accept.")
            text, allow_unsolved = original, False
        elif (text or "").strip() == original.strip():
            raise InputError("The text is unchanged: edit it, or 'Accept as is' if it is right.")
        return self.save_correction(
            actor,
            state.problem_id,
            thought,
            text,
            view.generation_id if view else None,
            allow_unsolved,
        )

    def review(
        self, actor: Actor, correction_id: int, decision: str, note: str | None = None
    ) -> Review:
        """Approve or reject a correction (or re-open it with decision ``"pending"``); never
        one's own (the store compares accounts)."""
        require(actor, "review")
        if note is not None and len(note) > MAX_NOTE_CHARS:
            raise InputError(f"The note is over {MAX_NOTE_CHARS:,} characters; shorten it.")
        return self.store.review(int(correction_id), actor, DECISIONS.get(decision, decision), note)

    def withdraw(self, actor: Actor, correction_id: int, note: str | None = None) -> Review:
        """Take back one's own pending or rejected correction (it stays on record; the store
        checks that ``actor`` wrote it)."""
        require(actor, "withdraw")
        if note is not None and len(note) > MAX_NOTE_CHARS:
            raise InputError(f"The note is over {MAX_NOTE_CHARS:,} characters; shorten it.")
        return self.store.withdraw(int(correction_id), actor, note)

    def queue(
        self, status: str = "pending", annotator: str | None = None, dataset: str | None = None
    ) -> list[Correction]:
        return self.store.corrections(status, annotator, dataset, limit=200)

    def export(self, actor: Actor) -> tuple[Path, int]:
        """Export every approved correction; returns a zip of the export folder and the count.
        Zips older than ``EXPORT_ZIPS_KEEP_S`` are deleted (the export folders stay)."""
        require(actor, "export")
        if not self.store.approved():
            raise InputError("Nothing to export yet: no correction has been approved.")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        folder = self.export_dir / f"corrections-{stamp}"
        record = self.store.export(folder, by=actor)
        zips = self.export_dir / "zips"
        zips.mkdir(parents=True, exist_ok=True)
        for old in zips.glob("*.zip"):
            if old.stat().st_mtime < time.time() - EXPORT_ZIPS_KEEP_S:
                old.unlink(missing_ok=True)
        return Path(shutil.make_archive(str(zips / folder.name), "zip", record.path)), record.count

    def audit_rows(self, actor: Actor, limit: int = 200) -> list[list[Any]]:
        """The newest audit rows (admins only)."""
        require(actor, "view_audit")
        return [audit_log.row(e) for e in self.store.audit_log(limit)]

    # ---------------------------------------------------------------------------- statistics

    def status_frame(self) -> pd.DataFrame:
        stats = self.store.stats()
        return pd.DataFrame(
            {"status": list(stats.by_status), "count": list(stats.by_status.values())}
        )

    def daily_frame(self) -> pd.DataFrame:
        """Corrections made per day and status (every status, zeros included, so that a chart's
        colours stay put as the numbers change)."""
        counts = {
            (str(day), status): n for day, status, n in queries.corrections_per_day(self.store)
        }
        days = sorted({day for day, _ in counts})
        rows = [(day, s, counts.get((day, s), 0)) for day in days for s in STATUSES]
        return pd.DataFrame(rows, columns=["day", "status", "count"])

    def accuracy_frame(self) -> pd.DataFrame:
        """Accuracy (%) per thought and vote of every model version with evaluation metrics,
        averaged over its evaluation sets."""
        rows = [
            {"model": v.name, "thought": k, "accuracy": value}
            for v in self.store.model_versions()
            for k, value in mean_accuracy(v.metrics).items()
        ]
        return pd.DataFrame(rows, columns=["model", "thought", "accuracy"])

    # ----------------------------------------------------------------------- active learning

    def rank(
        self, actor: Actor, pool: str, n: int = 8, upload: str | None = None
    ) -> list[active.Ranked]:
        """Solve ``n`` (at most ``MAX_RANK``) problems from an evaluation set (or an uploaded
        file, whose gold answers are written to the store by this admin) through the batcher,
        and rank them most-unsure first."""
        require(actor, "rank")
        n = max(1, min(int(n), MAX_RANK))
        if upload:
            require(actor, "upload_gold")
            problems: list[ProblemRef] = active.read_pool(upload, limit=n)
        else:
            problems = self.eval_sets.sample(pool, n)
        student = self.student()
        info = self.model_info()
        version_id = info.version.id if info.version else None
        return active.rank(
            lambda questions: self.batcher.solutions(student, questions),
            self.store,
            problems,
            version_id,
            actor=actor,
        )


def accuracy_rows(metrics: Any) -> list[dict[str, Any]]:
    """Accuracy (%) per thought, selector and majority vote, one row per evaluation set, from
    either ``training.evaluate``'s report (``{"datasets": {name: {"accuracy": {...}}}}``) or a
    plain ``{"accuracy": {...}}``."""
    if not isinstance(metrics, dict):
        return []
    sets = metrics.get("datasets")
    if isinstance(sets, dict):
        blocks = [(n, b.get("accuracy")) for n, b in sets.items() if isinstance(b, dict)]
    else:
        blocks = [("all", metrics.get("accuracy"))]
    keys = (*THOUGHTS, "verified", "majority")
    return [
        {"set": name, **{k: block[k] for k in keys if isinstance(block.get(k), int | float)}}
        for name, block in blocks
        if isinstance(block, dict)
    ]


def mean_accuracy(metrics: Any) -> dict[str, float]:
    """:func:`accuracy_rows` averaged over the evaluation sets."""
    rows = accuracy_rows(metrics)
    keys = dict.fromkeys(k for row in rows for k in row if k != "set")
    return {
        k: round(sum(r[k] for r in rows if k in r) / sum(k in r for r in rows), 2) for k in keys
    }


def _thought_text(thought: str, text: str | None) -> str:
    """``text`` as a thought to run, or :class:`InputError` (unknown thought, empty, too long)."""
    text = text or ""
    if thought not in THOUGHTS:
        raise InputError(f"unknown thought {thought!r}; use one of {', '.join(THOUGHTS)}")
    if not text.strip():
        raise InputError("Nothing to check: the text is empty.")
    if len(text) > MAX_THOUGHT_CHARS:
        raise InputError(f"The text is over {MAX_THOUGHT_CHARS:,} characters; shorten it.")
    return text


def _info_of(student: Any) -> ModelInfo:
    """A model that is served without a registered version, named by its base."""
    spec = student.engine.spec
    return ModelInfo(_short(spec.base), spec.base, spec.adapter)


def _short(path: str) -> str:
    return Path(path).name or path
