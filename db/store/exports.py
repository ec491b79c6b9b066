"""Approved corrections going out: training rounds that used them, exports, imports."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from db import audit
from db import export as export_io
from db.access import SYSTEM, Actor, as_actor
from db.models import APPROVED, Correction, CorrectionUse, Export, ModelVersion, Problem, Review
from db.store.base import get_row, matches, same, with_problems
from db.store.errors import CorrectionRejected, InvalidInput, NotFound, StoreError
from db.store.problems import ProblemStore
from eotd.execution import ThoughtResult, execute


@dataclass
class ImportReport:
    """What :meth:`Store.import_export` did."""

    path: str
    added: list[int] = field(default_factory=list)
    skipped: int = 0


class ExportStore(ProblemStore):
    """What approved corrections did and where they went (imports add problems too)."""

    def mark_used(
        self, correction_ids: Iterable[int], model_version_id: int, *, actor: Actor = SYSTEM
    ) -> int:
        """Record that these approved corrections trained ``model_version_id``; returns how many
        were newly recorded."""
        ids = sorted(set(correction_ids))

        def work(s: Session) -> int:
            get_row(s, ModelVersion, model_version_id)
            statuses = dict(
                s.execute(
                    select(Correction.id, Correction.status).where(Correction.id.in_(ids))
                ).all()
            )
            for cid in ids:
                if cid not in statuses:
                    raise NotFound(f"there is no correction #{cid}")
                if statuses[cid] != APPROVED:
                    raise StoreError(
                        f"correction #{cid} is {statuses[cid]}; only approved corrections train"
                    )
            done = set(
                s.scalars(
                    select(CorrectionUse.correction_id).where(
                        CorrectionUse.model_version_id == model_version_id,
                        CorrectionUse.correction_id.in_(ids),
                    )
                )
            )
            new = [cid for cid in ids if cid not in done]
            s.add_all(
                CorrectionUse(correction_id=c, model_version_id=model_version_id) for c in new
            )
            if new:
                audit.record(s, actor, "correction.use", f"model_version#{model_version_id}",
                             None, {"correction_ids": new})  # fmt: skip
            return len(new)

        return self._run(work)

    def unused_approved(self) -> list[Correction]:
        """Approved corrections that no model version has been trained on yet, oldest first."""
        query = (
            with_problems().where(Correction.id.in_(unused_approved_ids())).order_by(Correction.id)
        )
        return self._run(lambda s: list(s.scalars(query)), write=False)

    def approved(self, correction_ids: Sequence[int] | None = None) -> list[export_io.ExportRow]:
        """Approved corrections as training rows with provenance (all, or these ids); a
        correction identical to an earlier one (same problem, thought, text, annotator) is left
        out, as it would be the same training row."""

        def work(s: Session) -> list[export_io.ExportRow]:
            query = with_problems().where(Correction.status == APPROVED).order_by(Correction.id)
            if correction_ids is not None:
                query = query.where(Correction.id.in_(correction_ids))
            corrections = list(s.scalars(query))
            if correction_ids is not None:
                missing = sorted(set(correction_ids) - {c.id for c in corrections})
                if missing:
                    raise StoreError(f"not approved, or not there: corrections {missing}")
            latest = (
                select(func.max(Review.id))
                .where(Review.correction_id.in_([c.id for c in corrections]))
                .group_by(Review.correction_id)
            )
            approvals = {
                r.correction_id: r for r in s.scalars(select(Review).where(Review.id.in_(latest)))
            }
            rows: dict[str, export_io.ExportRow] = {}
            for c in corrections:
                row = export_io.to_row(c, approvals[c.id])
                rows.setdefault(row["id"], row)
            return list(rows.values())

        return self._run(work, write=False)

    def export(
        self, out_dir: str | Path, by: Actor | str, correction_ids: Sequence[int] | None = None
    ) -> Export:
        """Write approved corrections (all, or these ids) to ``out_dir`` as a ``datasets`` Dataset,
        JSONL and Parquet with a dataset card, and record the export. ``out_dir`` must not exist
        or be empty: an export never overwrites another."""
        if isinstance(by, str) and not by.strip():
            raise InvalidInput("say who is exporting (by is empty)")
        actor = as_actor(by)
        rows = self.approved(correction_ids)
        path = export_io.write_export(rows, Path(out_dir), by=actor.name)
        return self.record_export(actor, str(path), [row["correction_id"] for row in rows])

    def record_export(self, by: Actor | str, location: str, correction_ids: list[int]) -> Export:
        """Record that these corrections went out to ``location`` (a folder, a repo URL)."""
        actor = as_actor(by)

        def work(s: Session) -> Export:
            record = Export(
                created_by=actor.name,
                path=location,
                count=len(correction_ids),
                correction_ids=correction_ids,
            )
            s.add(record)
            s.flush()
            audit.record(s, actor, "export", f"export#{record.id}", None,
                         {"count": len(correction_ids), "path": location})  # fmt: skip
            return record

        return self._run(work)

    def exports(self) -> list[Export]:
        """All exports, newest first."""
        return self._run(
            lambda s: list(s.scalars(select(Export).order_by(Export.id.desc()))), write=False
        )

    def import_export(self, path: str | Path, *, actor: Actor = SYSTEM) -> ImportReport:
        """Add the approved corrections of an export (ours or another store's), keeping their
        annotator, reviewer and times. Each is re-solved first and must give the exported
        answer. Corrections already here (same problem, thought, text, annotator) are skipped."""
        report = ImportReport(path=str(path))
        for row in export_io.read_export(Path(path)):
            verdict = execute(row["thought"], row["target"], self.solve_timeout_s)
            if not verdict.ok:
                raise CorrectionRejected(row["thought"], verdict)
            if not same(verdict.answer, row["answer"]):
                raise StoreError(
                    f"row {row['id']}: the engine now answers {verdict.answer:g}, "
                    f"the export says {row['answer']:g}; nothing after this row was imported"
                )
            problem = self.add_problem(
                row["question"],
                row["gold_answer"],
                source=row["dataset"],
                source_id=row["origin_id"] if row["dataset"] is not None else None,
            )
            added = self._run(lambda s, r=row, p=problem, v=verdict: _import_row(s, r, p, v, actor))
            if added is None:
                report.skipped += 1
            else:
                report.added.append(added)
        return report


def unused_approved_ids() -> Select[tuple[int]]:
    used = select(CorrectionUse.correction_id)
    return select(Correction.id).where(Correction.status == APPROVED, Correction.id.not_in(used))


def _import_row(
    s: Session, row: export_io.ExportRow, problem: Problem, verdict: ThoughtResult, actor: Actor
) -> int | None:
    """Insert one exported row as an approved correction; None if it is already here."""
    duplicate = s.scalar(
        select(Correction.id).where(
            Correction.problem_id == problem.id,
            Correction.thought == row["thought"],
            Correction.corrected_text == row["target"],
            Correction.annotator == row["annotator"],
        )
    )
    if duplicate is not None:
        return None
    correction = Correction(
        problem_id=problem.id,
        thought=row["thought"],
        original_text=row["original_text"],
        corrected_text=row["target"],
        after_status=verdict.status,
        after_answer=verdict.answer,
        after_error=verdict.error,
        matches_gold=matches(verdict.answer, problem.gold_answer),
        unsolved=False,
        annotator=row["annotator"],
        status=APPROVED,
        created_at=datetime.fromisoformat(row["created_at"]),
    )
    s.add(correction)
    s.flush()
    s.add(
        Review(
            correction_id=correction.id,
            reviewer=row["reviewer"],
            decision=APPROVED,
            note=f"imported from export row {row['id']}",
            created_at=datetime.fromisoformat(row["reviewed_at"]),
        )
    )
    audit.record(s, actor, "correction.import", f"correction#{correction.id}", None,
                 {"status": APPROVED, "row": row["id"]})  # fmt: skip
    return correction.id
