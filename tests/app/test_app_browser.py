"""The full flow in real headless Chromium (Debian's package, driven by Playwright): solve an
example, edit the equations and watch them re-solve, save, approve in review (by keyboard),
export; plus no script injection through a question. Screenshots of every tab go to a temp dir,
or to ``EOTD_SCREENSHOTS`` (``docs/screenshots`` for the docs)."""

from __future__ import annotations

import json
import os
import re
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from db import users as accounts
from studio.identity import Access, Mode
from studio.ui import build_app, launch_local
from tests.app.support import SVAMP_1_EOT, Served, make_studio

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() and os.environ.get("CI") != "true",
        reason="Debian's chromium is not installed (CI installs it and never skips)",
    ),
]
# ms; the first solve waits for the model and the sandbox to warm up (the real one is slower)
WAIT = 600_000 if os.environ.get("EOTD_APP_TEST_MODEL") else 60_000


@pytest.fixture
def page(served: Served) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page.set_default_timeout(WAIT)
        page.goto(served.url)
        page.wait_for_selector("#question textarea")
        yield page
        browser.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("EOTD_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def box(page, elem_id: str):
    """The text field of a Gradio Textbox."""
    return page.locator(f"#{elem_id} textarea, #{elem_id} input").first


def press(page, key: str) -> None:
    """A key press outside any text box (where the shortcuts listen)."""
    page.locator("h1").first.click()
    page.keyboard.press(key)


def test_solve_correct_review_export(page, served: Served, shots: Path, tmp_path: Path) -> None:
    """Local mode: one person on 127.0.0.1, who is the admin, does it all."""
    page.wait_for_selector("#who:has-text('Local mode')")
    page.get_by_text("Each pack of dvds costs 76 dollars").first.click()  # an example
    expect(page.locator("#question textarea")).to_have_value(re.compile("Each pack of dvds"))
    page.click("#solve-btn")
    page.wait_for_selector("#vote:has-text('strategy')")
    assert "gold answer 51" in page.inner_text("#gold")
    assert "gold 51" in page.inner_text("#vote")
    for thought in ("cot", "pot", "eot"):
        assert page.locator(f"#panel-{thought} .badge").count() == 1
    page.screenshot(path=shots / "solve.png", full_page=True)

    tab(page, "Correct")
    before = served.studio.store.stats().corrections
    page.click("#save-pot")  # the pre-filled text, unchanged, is not a correction
    page.wait_for_selector("#msg-pot:has-text('unchanged')")
    assert served.studio.store.stats().corrections == before
    editor = box(page, "edit-eot")
    editor.fill("price = 76\ndiscount = 25\nans = price -")
    page.wait_for_selector("#check-eot:has-text('line 3')")
    editor.fill(SVAMP_1_EOT)
    page.wait_for_selector("#check-eot:has-text('solved: 51')")
    assert "pay" in page.inner_text("#check-eot")  # the table of solved variables
    page.click("#save-eot")
    page.wait_for_selector("#msg-eot:has-text('Saved correction')")
    assert "matches gold" in page.inner_text("#msg-eot")
    box(page, "edit-cot").fill("76 - 25 = 51. The answer is 51.")
    page.click("#save-cot")
    page.wait_for_selector("#msg-cot:has-text('Saved correction')")
    page.screenshot(path=shots / "correct.png", full_page=True)

    tab(page, "Review & data")
    page.wait_for_selector("#review-card:has-text('(1 of 2)')")
    assert "+ discount = 25" in page.inner_text("#review-card")  # the diff
    page.screenshot(path=shots / "review.png", full_page=True)
    press(page, "j")
    page.wait_for_selector("#review-card:has-text('(2 of 2)')")
    press(page, "k")
    page.wait_for_selector("#review-card:has-text('(1 of 2)')")
    press(page, "a")
    page.wait_for_selector("#review-msg:has-text('approved by local')")
    page.wait_for_selector("#review-card:has-text('(1 of 1)')")
    box(page, "note").fill("the chain of thought skips the reasoning")
    page.click("#reject-btn")
    page.wait_for_selector("#review-msg:has-text('rejected by local')")
    page.click("#export-btn")
    page.wait_for_selector("#export-msg:has-text('Exported 1 approved')")
    with page.expect_download() as download:
        page.locator("#export-file a").first.click()
    archive = tmp_path / "export.zip"
    download.value.save_as(archive)
    with zipfile.ZipFile(archive) as z:
        rows = [json.loads(line) for line in z.read("corrections.jsonl").splitlines()]
    assert [(r["thought"], r["target"], r["reviewer"]) for r in rows] == [
        ("eot", SVAMP_1_EOT, "local")
    ]
    page.wait_for_timeout(1000)  # let the charts redraw
    page.screenshot(path=shots / "review_export_statistics.png", full_page=True)

    tab(page, "Active learning")
    page.click("#rank-btn")
    page.wait_for_selector("#rank-msg:has-text('Ranked 8 problems')")
    page.screenshot(path=shots / "active_learning.png", full_page=True)
    press(page, "n")
    page.wait_for_selector("#rank-msg:has-text('Correcting problem #')", state="attached")
    problem = page.text_content("#rank-msg").split("#")[1].strip().rstrip(".")
    page.wait_for_selector(f"#summary:has-text('Problem #{problem} ')")
    expect(box(page, "edit-eot")).to_be_visible()  # one key took us to Correct

    tab(page, "Model")
    page.wait_for_selector("#model-info:has-text('torch float32 (cpu, ')")  # the engine serving
    page.screenshot(path=shots / "model.png", full_page=True)


def test_question_markup_is_shown_as_text_not_run(page) -> None:
    attack = '<img src=x onerror="window.hacked=1"><script>window.hacked=2</script> 3 apples?'
    page.fill("#question textarea", attack)
    page.click("#solve-btn")
    page.wait_for_selector("#vote:has-text('strategy')")
    tab(page, "Correct")
    page.wait_for_selector("#summary:has-text('3 apples?')")
    assert '<img src=x onerror="window.hacked=1">' in page.inner_text("#summary")
    box(page, "edit-cot").fill("3 apples <script>window.hacked=3</script>. The answer is 3.")
    page.click("#save-cot")
    page.wait_for_selector("#msg-cot:has-text('Saved correction')")
    tab(page, "Review & data")
    page.wait_for_selector("#review-card:has-text('window.hacked=3')")
    assert "onerror" in page.inner_text("#queue") and "onerror" in page.inner_text("#review-card")
    for where in ("#summary", "#queue", "#review-card"):
        assert page.locator(f"{where} img, {where} script").count() == 0
    assert page.evaluate("window.hacked") is None


def test_bad_question_gets_a_clear_message(page) -> None:
    page.fill("#question textarea", "What is love?")
    page.click("#solve-btn")
    page.wait_for_selector("text=no numbers")


@pytest.fixture(scope="module")
def with_accounts(tmp_path_factory, tiny_student, eval_sets) -> Iterator[Served]:
    studio = make_studio(tmp_path_factory.mktemp("accounts"), tiny_student, eval_sets,
                         access=Access(Mode.ACCOUNTS))  # fmt: skip
    accounts.add_user(studio.store, "rev", "reviewer", "rev-password-1")
    demo = build_app(studio)
    yield Served(studio, launch_local(demo, studio))
    demo.close()
    studio.store.close()


def test_sign_in_shows_what_the_role_may_do(with_accounts: Served, shots: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(WAIT)
        page.goto(with_accounts.url)
        page.get_by_label("username").fill("rev")
        page.get_by_label("password").fill("wrong-password")
        page.get_by_role("button", name="Login").click()
        page.wait_for_selector("text=Incorrect Credentials")
        page.get_by_label("username").fill("rev")  # the login page clears it
        page.get_by_label("password").fill("rev-password-1")
        page.get_by_role("button", name="Login").click()
        page.wait_for_selector("#who:has-text('Signed in as rev (reviewer)')")
        tab(page, "Review & data")
        expect(page.locator("#approve-btn")).to_be_visible()
        expect(page.locator("#withdraw-btn")).to_be_visible()  # a reviewer annotates too
        expect(page.locator("#export-btn")).to_be_hidden()
        tab(page, "Active learning")
        expect(page.locator("#rank-btn")).to_be_hidden()
        tab(page, "Correct")
        expect(page.locator("#save-eot")).to_be_visible()
        page.screenshot(path=shots / "signed_in_reviewer.png", full_page=True)
        browser.close()
