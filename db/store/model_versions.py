"""Model versions: trained students, and the one the app serves."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db import audit
from db.access import SYSTEM, Actor
from db.models import ModelVersion, utcnow
from db.store.base import StoreBase, get_row
from db.store.errors import InvalidInput


class ModelVersionStore(StoreBase):
    """Register trained students and promote one."""

    def register_model_version(
        self,
        name: str,
        base_model: str,
        adapter_path: str | None = None,
        training_summary: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        *,
        actor: Actor = SYSTEM,
    ) -> ModelVersion:
        """Record a trained student (not promoted yet)."""

        taken = InvalidInput(f"a model version named {name!r} already exists")

        def work(s: Session) -> ModelVersion:
            if s.scalar(select(ModelVersion.id).where(ModelVersion.name == name)) is not None:
                raise taken
            version = ModelVersion(
                name=name,
                base_model=base_model,
                adapter_path=adapter_path,
                training_summary=training_summary or {},
                metrics=metrics or {},
                promoted=False,
            )
            s.add(version)
            s.flush()
            audit.record(
                s,
                actor,
                "model.register",
                f"model_version#{version.id}",
                None,
                {"name": name, "base_model": base_model, "adapter_path": adapter_path},
            )
            return version

        try:
            return self._run(work)
        except IntegrityError:  # registered under the same name at the same instant
            raise taken from None

    def promote(self, version_id: int, *, actor: Actor = SYSTEM) -> ModelVersion:
        """Make ``version_id`` the one model the app serves (the previous one is demoted)."""

        def work(s: Session) -> ModelVersion:
            # Lock every version, so that promotions at once (PostgreSQL) run one after the
            # other and each demotes what the previous one promoted.
            versions = {v.id: v for v in s.scalars(select(ModelVersion).with_for_update())}
            version = versions.get(version_id) or get_row(s, ModelVersion, version_id)
            before = None
            for other in (v for v in versions.values() if v.promoted):
                other.promoted = False
                before = {"promoted": other.name}
            s.flush()  # demote first: the database allows one promoted version at a time
            version.promoted = True
            version.promoted_at = utcnow()
            s.flush()
            audit.record(s, actor, "model.promote", f"model_version#{version.id}", before,
                         {"promoted": version.name})  # fmt: skip
            return version

        return self._run(work)

    def promoted_model_version(self) -> ModelVersion | None:
        return self._run(
            lambda s: s.scalars(select(ModelVersion).where(ModelVersion.promoted)).first(),
            write=False,
        )

    def model_versions(self) -> list[ModelVersion]:
        """All model versions, newest first."""
        query = select(ModelVersion).order_by(ModelVersion.id.desc())
        return self._run(lambda s: list(s.scalars(query)), write=False)
