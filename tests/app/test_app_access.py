"""Who may do what, against the running app: anonymous clients, annotators and reviewers call
every event by its ``fn_index`` (private ones too) and every named endpoint, and the store holds
exactly what it held before; the role checks, limits and audit rows behind them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from sqlalchemy import func, select

from db import CorrectionRejected, ReviewError, Store
from db import users as accounts
from db.access import Actor, PermissionDenied, Role
from db.models import AuditEntry, Correction, Export, ModelVersion, Problem, Review, User
from studio.handlers import Studio
from studio.identity import Access, Mode
from studio.limits import Rate, RateLimited, RateLimiter
from studio.ui import build_app, launch_local
from tests.app.queue_client import RawClient
from tests.app.support import SVAMP_1, SVAMP_1_EOT, make_studio

PASSWORDS = {"ann": "ann-password-1", "rev": "rev-password-1", "root": "root-password-1"}
ROLES = {"ann": Role.ANNOTATOR, "rev": Role.REVIEWER, "root": Role.ADMIN}
# Inputs a sweep gives the events that need more than their components' defaults.
OVERRIDES = {"Question": SVAMP_1, "Note (why; required to reverse a decision)": "sweep"}


@dataclass
class App:
    studio: Studio
    url: str
    people: dict[str, Actor]
    pending_id: int
    version_id: int


def seed(store: Store) -> tuple[dict[str, Actor], int, int]:
    """Accounts, a pending and an approved correction, an unpromoted model version."""
    people = {}
    for name, role in ROLES.items():
        user = accounts.add_user(store, name, role, PASSWORDS[name])
        people[name] = Actor(name, role, user.id)
    problem = store.add_problem(SVAMP_1, 51, "svamp", "svamp-chal-1")
    pending = store.add_correction("eot", SVAMP_1_EOT, people["ann"], problem.id)
    done = store.add_correction("cot", "76 - 25 = 51. The answer is 51.", people["ann"], problem.id)
    store.review(done.id, people["rev"], "approved")
    version = store.register_model_version("tiny-v2", "tiny", None)
    return people, pending.id, version.id


def snapshot(store: Store) -> dict:
    """Everything curation changes: corrections and their states, reviews, exports, gold
    answers, accounts, model versions and the audit log."""

    def work(s) -> dict:
        rows = {
            model.__name__: s.scalar(select(func.count()).select_from(model))
            for model in (Correction, Review, Export, User, ModelVersion, AuditEntry)
        }
        rows["statuses"] = sorted(s.execute(select(Correction.id, Correction.status)).all())
        rows["gold"] = sorted(s.execute(select(Problem.id, Problem.gold_answer)).all())
        rows["promoted"] = s.scalars(select(ModelVersion.name).where(ModelVersion.promoted)).all()
        rows["users"] = sorted(s.execute(select(User.name, User.role, User.disabled_at)).all())
        return rows

    return store.transaction(work, write=False)


def serve(tmp: Path, tiny_student, eval_sets, mode: Mode) -> Iterator[App]:
    studio = make_studio(tmp, tiny_student, eval_sets, access=Access(mode))
    people, pending_id, version_id = seed(studio.store)
    demo = build_app(studio)
    yield App(studio, launch_local(demo, studio), people, pending_id, version_id)
    demo.close()
    studio.store.close()


@pytest.fixture(scope="module")
def accounts_app(tmp_path_factory, tiny_student, eval_sets) -> Iterator[App]:
    yield from serve(tmp_path_factory.mktemp("accounts"), tiny_student, eval_sets, Mode.ACCOUNTS)


@pytest.fixture(scope="module")
def public_app(tmp_path_factory, tiny_student, eval_sets) -> Iterator[App]:
    yield from serve(tmp_path_factory.mktemp("public"), tiny_student, eval_sets, Mode.PUBLIC)


@pytest.mark.stress
def test_anonymous_raw_calls_of_every_event_change_nothing(public_app: App) -> None:
    store = public_app.studio.store
    before = snapshot(store)
    results = RawClient(public_app.url).sweep(OVERRIDES)
    assert len(results) >= 2 * 20  # every event of the app, twice
    refusals = [r for r in results if "may not" in str(r)]
    assert refusals, "no event was refused: the sweep reached no guarded action"
    assert snapshot(store) == before
    assert not list((public_app.studio.export_dir).glob("corrections-*"))


def test_anonymous_named_endpoints_are_refused(public_app: App) -> None:
    store, client = public_app.studio.store, Client(public_app.url, verbose=False)
    before = snapshot(store)
    problem_id = store.add_problem(SVAMP_1, 51, "svamp", "svamp-chal-1").id
    with pytest.raises(AppError, match="may not save corrections"):
        client.predict(problem_id, "eot", SVAMP_1_EOT, api_name="/save_correction")
    with pytest.raises(AppError, match="may not review corrections"):
        client.predict(public_app.pending_id, "approve", "ok", api_name="/review_correction")
    with pytest.raises(AppError, match="may not export"):
        client.predict(api_name="/export_corrections")
    assert client.predict("a = 2\nans = a * 3", api_name="/check_equations")["answer"] == 6
    assert snapshot(store) == before


def test_with_accounts_an_anonymous_client_gets_nothing(accounts_app: App) -> None:
    before = snapshot(accounts_app.studio.store)
    raw = RawClient(accounts_app.url)
    assert raw.http.get("/config").status_code == 401
    refused = raw.call(0, [SVAMP_1])
    assert refused["msg"] == "refused" and refused["status"] == 401
    assert snapshot(accounts_app.studio.store) == before


@pytest.mark.stress
@pytest.mark.parametrize(
    ("name", "may_change"),
    [("ann", {"Correction", "Review", "AuditEntry", "statuses"}),  # withdrawing is a review
     ("rev", {"Correction", "Review", "AuditEntry", "statuses"})],
)  # fmt: skip
def test_signed_in_raw_calls_stay_within_the_role(
    accounts_app: App, name: str, may_change: set[str]
) -> None:
    store = accounts_app.studio.store
    before = snapshot(store)
    before_withdrawn = {c.id for c in store.corrections("withdrawn", limit=1000)}
    results = RawClient.signed_in(accounts_app.url, name, PASSWORDS[name]).sweep(OVERRIDES)
    refused = " ".join(str(r) for r in results)
    assert "needs the admin role" in refused  # export, rank, serve, promote, audit were tried
    assert name != "ann" or "needs the reviewer role" in refused
    after = snapshot(store)
    changed = {key for key in before if before[key] != after[key]}
    assert changed <= may_change, changed
    actions = {e.action for e in store.audit_log(1000) if e.user_name == name}
    allowed = {"ann": {"correction.save", "correction.withdrawn"},
               "rev": {"correction.save", "correction.withdrawn", "correction.approved",
                       "correction.rejected", "correction.pending"}}[name]  # fmt: skip
    assert actions <= allowed
    withdrawn = store.corrections("withdrawn", limit=1000)
    assert all(c.annotator == name for c in withdrawn if c.id not in before_withdrawn)


def test_named_endpoints_follow_roles_and_audit_each_change(accounts_app: App) -> None:
    app, store = accounts_app, accounts_app.studio.store
    ann, rev, root = (
        Client(app.url, auth=(n, PASSWORDS[n]), verbose=False) for n in ("ann", "rev", "root")
    )
    audited = len(store.audit_log(10_000))
    problem_id = store.add_problem(SVAMP_1, 51, "svamp", "svamp-chal-1").id
    saved = ann.predict(problem_id, "eot", SVAMP_1_EOT + "\n% again", api_name="/save_correction")
    assert store.get_correction(saved["correction_id"]).annotator == "ann"
    with pytest.raises(AppError, match="needs the reviewer role"):
        ann.predict(saved["correction_id"], "approve", "", api_name="/review_correction")
    mine = rev.predict(problem_id, "eot", SVAMP_1_EOT + "\n% mine", api_name="/save_correction")
    with pytest.raises(AppError, match="cannot review"):
        rev.predict(mine["correction_id"], "approve", "", api_name="/review_correction")
    review = rev.predict(saved["correction_id"], "approve", "ok", api_name="/review_correction")
    assert review["reviewer"] == "rev"
    with pytest.raises(AppError, match="needs the admin role"):
        rev.predict(api_name="/export_corrections")
    assert Path(root.predict(api_name="/export_corrections")).suffix == ".zip"
    new = store.audit_log(10_000)[: len(store.audit_log(10_000)) - audited]
    assert sorted((e.user_name, e.action) for e in new) == [
        ("ann", "correction.save"), ("rev", "correction.approved"), ("rev", "correction.save"),
        ("root", "export"),
    ]  # fmt: skip
    assert all(e.client == "127.0.0.1" for e in new)


def test_uploads_over_the_size_limit_are_refused_unread(accounts_app: App) -> None:
    raw = RawClient.signed_in(accounts_app.url, "root", PASSWORDS["root"])
    big = {"files": ("pool.jsonl", b'{"question": "1 + 1?"}\n' * 60_000)}
    response = raw.http.post("/gradio_api/upload", files=big)
    assert response.status_code == 413, response.text


def test_self_review_is_refused_by_account_whatever_the_name(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.sqlite3'}")
    problem = store.add_problem(SVAMP_1, 51)
    ids = [accounts.add_user(store, n, "reviewer", "a-long-password").id for n in ("alice", "al")]
    alice = Actor("alice", Role.REVIEWER, user_id=ids[0])
    correction = store.add_correction("eot", SVAMP_1_EOT, alice, problem.id)
    with pytest.raises(ReviewError, match="cannot review"):
        store.review(correction.id, Actor("Alice B.", Role.REVIEWER, ids[0]), "approved")
    with pytest.raises(ReviewError, match="cannot review"):  # no account: names, ignoring case
        store.review(correction.id, "ALICE", "approved")
    # another account, even one whose name resembles hers, may
    assert store.review(correction.id, Actor("alice", Role.REVIEWER, ids[1]), "approved")
    store.close()


def test_roles_are_checked_in_the_handlers(studio: Studio, tmp_path: Path) -> None:
    visitor, annotator = Actor("x", Role.VISITOR), Actor("a", Role.ANNOTATOR)
    problem_id = studio.store.add_problem(SVAMP_1, 51).id
    before = snapshot(studio.store)
    with pytest.raises(PermissionDenied, match="save corrections"):
        studio.save_correction(visitor, problem_id, "eot", SVAMP_1_EOT)
    for call in (
        lambda: studio.rank(annotator, "svamp", 2),
        lambda: studio.promote(annotator, 1),
        lambda: studio.switch_model(annotator, 1),
        lambda: studio.export(annotator),
        lambda: studio.audit_rows(annotator),
    ):
        with pytest.raises(PermissionDenied, match="needs the admin role"):
            call()
    pool = tmp_path / "pool.csv"
    pool.write_text(f"question,answer\n{SVAMP_1},999\n")
    with pytest.raises(PermissionDenied):
        studio.rank(Actor("r", Role.REVIEWER), "upload", 1, upload=str(pool))
    assert snapshot(studio.store) == before


@pytest.mark.stress
def test_an_endless_program_is_not_stored_unless_kept_unsolved(studio: Studio) -> None:
    problem_id = studio.store.add_problem(SVAMP_1, 51).id
    ann = Actor("a", Role.ANNOTATOR)
    with pytest.raises(CorrectionRejected, match="timeout"):
        studio.save_correction(ann, problem_id, "pot", "while True:\n    pass\nans = 1")
    assert studio.store.stats().corrections == 0
    kept = studio.save_correction(ann, problem_id, "pot", "while True:\n    pass", None, True)
    assert kept.unsolved and kept.after_status == "timeout"


def test_rate_limits_trip_per_client_and_recover(tmp_path: Path, tiny_student, eval_sets) -> None:
    now = [0.0]
    limits = RateLimiter({"check": Rate(60, 2)}, clock=lambda: now[0])
    studio = make_studio(tmp_path, tiny_student, eval_sets, access=Access(Mode.PUBLIC),
                         limits=limits)  # fmt: skip
    one, other = (Actor("anonymous", Role.VISITOR, client=ip) for ip in ("10.0.0.1", "10.0.0.2"))
    for _ in range(2):
        studio.check(one, "eot", "ans = 1")
    with pytest.raises(RateLimited, match="try again in 1 s"):
        studio.check(one, "eot", "ans = 1")
    assert studio.check(other, "eot", "ans = 2").answer == 2  # another client is not held back
    now[0] += 1.0
    assert studio.check(one, "eot", "ans = 3").answer == 3
    studio.store.close()


def test_oversize_fields_are_refused(studio: Studio) -> None:
    problem_id = studio.store.add_problem(SVAMP_1, 51).id
    ann, rev = Actor("a", Role.ANNOTATOR), Actor("r", Role.REVIEWER)
    with pytest.raises(ValueError, match="over 10,000 characters"):
        studio.save_correction(ann, problem_id, "eot", "x = 1\n" * 5000)
    correction = studio.save_correction(ann, problem_id, "eot", SVAMP_1_EOT)
    with pytest.raises(ValueError, match="note is over"):
        studio.review(rev, correction.id, "reject", "n" * 1_000_000)
    with pytest.raises(ValueError, match="user name"):
        accounts.add_user(studio.store, "x" * 100_000, "annotator", "long-enough-pw")
    assert studio.store.get_correction(correction.id).status == "pending"


def _request(session: dict | None = None, username: str | None = None) -> SimpleNamespace:
    scope = {"session": session} if session is not None else {}
    return SimpleNamespace(
        request=SimpleNamespace(scope=scope),
        username=username,
        client=SimpleNamespace(host="1.2.3.4"),
    )


def test_oauth_sessions_give_roles_and_anonymous_is_a_visitor(store_file: Store) -> None:
    access = Access(Mode.OAUTH, admins=frozenset({"boss"}), default_role=Role.ANNOTATOR)
    accounts.add_user(store_file, "carol", "reviewer", provider="hf")

    def actor(name: str | None, expires: float = 2e9) -> Actor:
        info = {"userinfo": {"preferred_username": name}, "expires_at": expires}
        return access.actor(store_file, _request({"oauth_info": info} if name else {}))

    assert actor("Boss").role is Role.ADMIN
    assert actor("carol").role is Role.REVIEWER and actor("carol").user_id is not None
    assert actor("dave").role is Role.ANNOTATOR
    assert actor(None).role is Role.VISITOR
    assert actor("boss", expires=1.0).role is Role.VISITOR  # an expired session signs out
    # a login cookie does not count in OAuth mode, nor an unknown or disabled account elsewhere
    assert access.actor(store_file, _request(username="boss")).role is Role.VISITOR
    local = Access(Mode.ACCOUNTS)
    accounts.add_user(store_file, "erin", "admin", "erin-password")
    assert local.actor(store_file, _request(username="ERIN")).role is Role.ADMIN
    accounts.disable(store_file, "erin")
    assert local.actor(store_file, _request(username="erin")).role is Role.VISITOR


@pytest.fixture
def store_file(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'users.sqlite3'}")
    yield s
    s.close()


def test_the_mode_follows_accounts_host_and_space(store_file: Store) -> None:
    assert Access.detect(store_file, "127.0.0.1", {}).mode is Mode.LOCAL
    assert Access.detect(store_file, None, {}).mode is Mode.LOCAL
    assert Access.detect(store_file, "0.0.0.0", {}).mode is Mode.PUBLIC
    space = {"SPACE_ID": "me/studio", "OAUTH_CLIENT_SECRET": "s", "EOTD_ADMINS": "Me, you"}
    oauth = Access.detect(store_file, "0.0.0.0", space)
    assert oauth.mode is Mode.OAUTH and oauth.admins == {"me", "you"}
    assert Access.detect(store_file, "0.0.0.0", {"SPACE_ID": "me/studio"}).mode is Mode.PUBLIC
    accounts.add_user(store_file, "root", "admin", "root-password")
    assert Access.detect(store_file, "127.0.0.1", {}).mode is Mode.ACCOUNTS


def test_login_page_checks_the_accounts(accounts_app: App) -> None:
    login = f"{accounts_app.url.rstrip('/')}/login"
    assert (
        httpx.post(login, data={"username": "rev", "password": "wrong-password"}).status_code == 400
    )
    assert httpx.post(login, data={"username": "nobody", "password": "x" * 12}).status_code == 400
    ok = httpx.post(login, data={"username": "Rev", "password": PASSWORDS["rev"]})
    assert ok.status_code == 200 and ok.json() == {"success": True}


def test_model_changes_are_audited_with_their_admin(studio: Studio, tiny_model_dir: Path) -> None:
    root = Actor("root", Role.ADMIN, client="10.1.2.3")
    version = studio.store.register_model_version("tiny-v3", str(tiny_model_dir), None, actor=root)
    studio.switch_model(root, version.id)
    studio.promote(root, version.id)
    entries = studio.store.audit_log()
    assert [(e.action, e.user_name, e.client) for e in entries] == [
        ("model.promote", "root", "10.1.2.3"), ("model.serve", "root", "10.1.2.3"),
        ("model.register", "root", "10.1.2.3"),
    ]  # fmt: skip
    assert entries[0].after == {"promoted": "tiny-v3"} and entries[1].after == {"served": "tiny-v3"}
