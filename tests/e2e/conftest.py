"""Browser tests: the real app (``python app.py`` in a subprocess, on a free port, with a temporary data dir and
tiny local models) driven by Playwright in Debian's Chromium.

Playwright's own browser download doesn't work offline, so the system Chromium is launched by path. Assertions
retry (``expect``) instead of waiting for "network idle", which a Gradio page with timers never reaches. Each
journey saves screenshots into ``E2E_ARTIFACTS`` (default ``artifacts/e2e``) for people to look at, and one named
``<test>-failed.png`` when it fails.

Without Playwright or Chromium these tests are skipped — unless ``E2E_REQUIRED=1`` (set by ``.ci/run``), where a
missing browser fails them: CI must really run them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app_process import RunningApp, start_app

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-quic", "--disable-gpu"]
ARTIFACTS = Path(os.environ.get("E2E_ARTIFACTS", ROOT / "artifacts" / "e2e"))
SLOW = 120_000
"""Milliseconds for what waits on a model or a training process (2 shared CPU cores)."""


def browser_missing() -> str | None:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -r requirements-dev.txt)"
    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    missing = browser_missing()
    if missing:
        if os.environ.get("E2E_REQUIRED") == "1":
            pytest.fail(f"E2E_REQUIRED=1 but {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def running_app(tmp_path, tiny_base, tiny_chat) -> Iterator[RunningApp]:
    """A fresh app per test: tiny base model on the left, tiny chat model on the right."""
    app = start_app(tmp_path / "data", tiny_base, tiny_chat)
    yield app
    app.stop()


@pytest.fixture
def page(browser, running_app, request):
    """A fresh browser page on the app; a screenshot of it is saved when the test fails."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    expect.set_options(timeout=30_000)
    page.goto(running_app.url)
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        shot(page, f"{request.node.name}-failed")
    context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def shot(page, name: str) -> Path:
    """Save a screenshot of the whole page as a test artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def open_sft_form(page, run_name: str, base_model: str):
    """Open the Train tab's SFT form, name the run and pick the base model; returns the form."""
    open_tab(page, "Train")
    form = page.locator("#train-form-sft")
    form.get_by_label("Run name:").fill(run_name)
    base = form.get_by_label("base model", exact=True)
    base.fill(base_model)
    base.press("Enter")
    return form


def open_tab(page, name: str):
    """Click a top-level tab; returns the panel now shown (locators inside it skip the hidden tabs)."""
    from playwright.sync_api import expect

    tab = page.get_by_role("tab", name=name, exact=True)
    tab.click()
    expect(tab).to_have_attribute("aria-selected", "true")
    return page.get_by_role("tabpanel")


def fill_fields(fields: list[tuple[object, str]], confirm: str = "Tab") -> None:
    """Type each value into its field, then make sure every field still holds it before the caller submits.

    A field inside an accordion that was just opened can be mounted again with its initial value right after the
    first fill (seen once in CI: a run started with the default max steps). So fill them all, look again, refill
    those that lost their value, and assert the whole form holds what was typed.
    """
    from playwright.sync_api import expect

    for _ in range(3):
        stale = [(field, value) for field, value in fields if field.input_value() != value]
        if not stale:
            break
        for field, value in stale:
            field.fill(value)
            field.press(confirm)
        stale[0][0].page.wait_for_timeout(300)  # long enough for a re-mount to show before looking again
    for field, value in fields:
        expect(field).to_have_value(value)
