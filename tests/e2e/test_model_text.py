"""Model text in the browser: a rater judges exactly what the model wrote. Tags, type parameters and control tokens
in prompts and answers are shown as text in Rate and History, and nothing in them runs (no dialog opens)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from playground.ratings.store import ComparisonRecord, Side, Store
from tests.app_process import RunningApp, start_app
from tests.e2e.conftest import SLOW, open_tab, shot

pytestmark = pytest.mark.slow

PROMPT = "Show <b>bold</b> & List<String> in ${x}"
LEFT = "<div>x</div> and List<String> xs;\n#include <stdio.h>\n    indented\tand a tab <start_of_image>after it"
RIGHT = "<img src=x onerror=alert(1)> then <script>alert(2)</script> done\n\n**not bold** {{x}} $$y$$"
IMPORTED = {"prompt": "Import <i>this</i>?", "chosen": "<div>x</div> List<String> <img src=y onerror=alert(3)>",
            "rejected": "<script>alert(4)</script><start_of_image>tail"}


@pytest.fixture
def seeded_app(tmp_path) -> Iterator[RunningApp]:
    """The app on a data dir holding one rating batch: a single pair whose prompt and answers are full of markup."""
    data = tmp_path / "data"
    data.mkdir()
    store = Store(data / "ratings.sqlite3")
    batch = store.create_batch("markup", ["model-a", "model-b"], 1)
    store.insert_many([ComparisonRecord(messages=[{"role": "user", "content": PROMPT}],
                                        a=Side("model-a", response=LEFT), b=Side("model-b", response=RIGHT),
                                        left_side="a", batch_id=batch.id, position=0, source="rate", blind=True)])
    store.set_batch_status(batch.id, "ready")
    app = start_app(data)
    yield app
    app.stop()


@pytest.fixture
def seeded_page(browser, seeded_app):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    expect.set_options(timeout=30_000)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(seeded_app.url)
    yield page, dialogs
    context.close()


def shown_texts(page, selector: str) -> list[str]:
    """The text each verbatim block under ``selector`` shows on screen (``innerText``: as rendered, whitespace
    included), once they are there."""
    blocks = page.locator(f"{selector} .verbatim")
    expect(blocks.first).to_be_visible(timeout=SLOW)
    return [block.inner_text() for block in blocks.all()]


def assert_nothing_rendered(page, selector: str) -> None:
    for tag in ("img", "script", "i", "start_of_image"):
        assert page.locator(f"{selector} .verbatim {tag}").count() == 0, tag
    assert page.locator(f"{selector} .verbatim div").count() == 0


def test_markup_in_prompts_and_answers_is_shown_as_text_in_rate_and_history(seeded_page, tmp_path):
    page, dialogs = seeded_page
    open_tab(page, "Rate")
    expect(page.locator("#rate-progress")).to_contain_text("0 / 1 rated", timeout=SLOW)
    assert shown_texts(page, "#rate-prompt") == [PROMPT]
    assert shown_texts(page, "#rate-left-answer") == [LEFT]
    assert shown_texts(page, "#rate-right-answer") == [RIGHT]
    for side in ("#rate-prompt", "#rate-left-answer", "#rate-right-answer"):
        assert_nothing_rendered(page, side)
    shot(page, "model-text-rate")
    page.locator("#rate-left").click()
    expect(page.locator("#rate-progress")).to_contain_text("1 / 1 rated", timeout=SLOW)

    history = open_tab(page, "History")
    history.get_by_role("gridcell", name=PROMPT, exact=True).click()
    assert shown_texts(page, "#history-detail") == [PROMPT, LEFT, RIGHT]
    assert_nothing_rendered(page, "#history-detail")

    upload = tmp_path / "pairs.jsonl"
    upload.write_text(json.dumps(IMPORTED) + "\n")
    history.get_by_role("button", name="Import preference data").click()
    history.locator("input[type=file][accept*='.jsonl']").set_input_files(str(upload))
    expect(history.get_by_text("Imported 1")).to_be_visible(timeout=SLOW)
    history.get_by_role("button", name="Refresh").click()
    history.get_by_role("gridcell", name=IMPORTED["prompt"], exact=True).click()
    expect(page.locator("#history-detail")).to_contain_text("import")
    assert shown_texts(page, "#history-detail") == [IMPORTED["prompt"], IMPORTED["chosen"], IMPORTED["rejected"]]
    assert_nothing_rendered(page, "#history-detail")
    shot(page, "model-text-history")

    page.wait_for_timeout(1000)  # an onerror handler would have fired by now
    assert dialogs == []
