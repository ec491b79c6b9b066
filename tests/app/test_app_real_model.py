"""One smoke test with the real default student (SmolLM2-135M-Instruct + shipped adapter)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.app.support import SVAMP_1, VISITOR, make_studio


@pytest.mark.slow
def test_the_default_student_answers_through_the_app(tmp_path: Path, eval_sets) -> None:
    studio = make_studio(tmp_path, None, eval_sets, max_new_tokens=48)
    states = list(studio.solve(VISITOR, SVAMP_1))
    final = states[-1]
    assert "SmolLM2-135M-Instruct" in studio.model_info().base
    assert sorted(final.thoughts) == ["cot", "eot", "pot"] and final.verdict is not None
    assert all(v.text.strip() for v in final.thoughts.values())  # it writes something real
    assert studio.store.stats().generations == 3
