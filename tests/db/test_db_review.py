"""The review state machine: who may decide what, and when."""

from __future__ import annotations

import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from db.settings import StoreSettings
from db.store import ReviewError, Store


@pytest.fixture
def cid(store: Store, problem_id: int) -> int:
    """A pending cot correction by alice."""
    return store.add_correction("cot", "She makes $18. The answer is 18.", "alice", problem_id).id


def history(store: Store, cid: int) -> list[tuple[str, str]]:
    return [(r.reviewer, r.decision) for r in store.reviews(cid)]


def test_approval_sets_status_and_is_recorded(store: Store, cid: int):
    review = store.review(cid, "bob", "approved", "checked by hand")
    assert (review.reviewer, review.decision, review.note) == ("bob", "approved", "checked by hand")
    assert store.get_correction(cid).status == "approved"
    assert history(store, cid) == [("bob", "approved")]


def test_no_double_approval(store: Store, cid: int):
    store.review(cid, "bob", "approved")
    with pytest.raises(ReviewError, match=r"already approved by bob on \d{4}-"):
        store.review(cid, "carol", "approved")
    assert history(store, cid) == [("bob", "approved")]


def test_concurrent_approvals_only_one_wins(store: Store, cid: int):
    outcomes: list[str] = []
    start = threading.Barrier(4)

    def approve(reviewer: str) -> None:
        start.wait()
        try:
            store.review(cid, reviewer, "approved")
            outcomes.append("ok")
        except ReviewError:
            outcomes.append("refused")

    threads = [threading.Thread(target=approve, args=(f"r{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok", "refused", "refused", "refused"]
    assert len(store.reviews(cid)) == 1


def test_annotator_may_not_review_own_work_unless_configured(
    store: Store, cid: int, monkeypatch: pytest.MonkeyPatch
):
    with pytest.raises(ReviewError, match=r"alice wrote correction .* cannot review it"):
        store.review(cid, "alice", "approved")
    assert store.get_correction(cid).status == "pending"
    monkeypatch.setenv("EOTD_ALLOW_SELF_REVIEW", "1")
    solo = Store(store.url, settings=StoreSettings.from_env())
    solo.review(cid, "alice", "approved")
    assert solo.get_correction(cid).status == "approved"


def test_rejected_must_be_reopened_with_a_note_before_approval(store: Store, cid: int):
    store.review(cid, "bob", "rejected", "wrong units")
    with pytest.raises(ReviewError, match="re-open it"):
        store.review(cid, "carol", "approved")
    with pytest.raises(ReviewError, match="add a note"):
        store.review(cid, "carol", "pending")
    store.review(cid, "carol", "pending", "units are fine after all")
    store.review(cid, "carol", "approved")
    assert store.get_correction(cid).status == "approved"
    assert history(store, cid) == [("bob", "rejected"), ("carol", "pending"), ("carol", "approved")]


def test_approved_can_be_reversed_only_with_a_note(store: Store, cid: int):
    store.review(cid, "bob", "approved")
    with pytest.raises(ReviewError, match="add a note"):
        store.review(cid, "carol", "rejected", "  ")
    store.review(cid, "carol", "rejected", "the target repeats the question")
    assert store.get_correction(cid).status == "rejected"


def test_no_approving_a_rejected_then_withdrawn_correction(store: Store, cid: int):
    store.review(cid, "bob", "rejected", "no")
    with pytest.raises(ReviewError, match="only alice, who wrote correction"):
        store.withdraw(cid, "bob")
    store.withdraw(cid, "alice", "I will write a new one")
    for decision, note in (("approved", None), ("pending", "reopen"), ("rejected", "x")):
        with pytest.raises(ReviewError, match=r"was withdrawn by alice .* can no longer change"):
            store.review(cid, "carol", decision, note)
    with pytest.raises(ReviewError, match="can no longer change"):
        store.withdraw(cid, "alice")
    assert store.get_correction(cid).status == "withdrawn"
    assert store.corrections() == []


def test_approved_cannot_be_withdrawn(store: Store, cid: int):
    store.review(cid, "bob", "approved")
    with pytest.raises(ReviewError, match=r"is approved by bob .* cannot become withdrawn"):
        store.withdraw(cid, "alice")


def test_unsolved_correction_cannot_be_approved_but_can_be_rejected(store: Store, problem_id: int):
    flagged = store.add_correction(
        "cot", "She makes money.", "alice", problem_id, allow_unsolved=True
    ).id
    with pytest.raises(ReviewError, match=r"does not solve .*no_answer.* cannot be approved"):
        store.review(flagged, "bob", "approved")
    store.review(flagged, "bob", "rejected")
    assert store.get_correction(flagged).status == "rejected"


def test_bad_review_input(store: Store, cid: int):
    with pytest.raises(ReviewError, match="unknown decision 'ok'"):
        store.review(cid, "bob", "ok")
    with pytest.raises(ReviewError, match="reviewer is empty"):
        store.review(cid, " ", "approved")
    with pytest.raises(ReviewError, match="already pending"):
        store.review(cid, "bob", "pending", "again")
    with pytest.raises(ReviewError, match="no correction #999"):
        store.review(999, "bob", "approved")
    assert store.reviews(cid) == []


ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(["approved", "rejected", "pending", "withdraw"]),
        st.sampled_from(["alice", "bob", "carol"]),
        st.sampled_from([None, "because"]),
    ),
    max_size=8,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(actions=ACTIONS, solves=st.booleans())
def test_any_sequence_of_decisions_keeps_the_rules(
    store: Store, problem_id: int, actions: list[tuple[str, str, str | None]], solves: bool
):
    text = "The answer is 18." if solves else "No final answer."
    cid = store.add_correction("cot", text, "alice", problem_id, allow_unsolved=True).id
    status = "pending"
    for decision, who, note in actions:
        try:
            if decision == "withdraw":
                store.withdraw(cid, who, note)
            else:
                store.review(cid, who, decision, note)
        except ReviewError:
            assert store.get_correction(cid).status == status  # a refusal changes nothing
            continue
        new = "withdrawn" if decision == "withdraw" else decision
        assert new != status, "a decision always changes the status"
        assert status != "withdrawn", "withdrawn is final"
        assert new != "approved" or (solves and status == "pending" and who != "alice")
        assert (new == "withdrawn") == (who == "alice")
        status = new
    reviews = store.reviews(cid)
    assert store.get_correction(cid).status == (reviews[-1].decision if reviews else "pending")
    assert store.get_correction(cid).status == status
