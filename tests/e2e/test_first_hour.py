"""What a new user hit in the first hour, in a real browser: Enter sends the prompt (Shift+Enter is a new line),
blind mode hides the models until the vote or Reveal, Show config and command prints steps that work as shown, a
refused form value is named in plain words, and the Train form's checkboxes are readable."""

from __future__ import annotations

import re

import pytest
import yaml
from playwright.sync_api import expect

from playground.ui.train_tab import GROUPS, STAGE_LABELS
from tests.e2e.conftest import SLOW, fill_fields, open_sft_form, open_tab, shot
from tests.test_train_api import save_and_run_as_shown

pytestmark = pytest.mark.slow


def short_answers(panel, tokens: int = 8) -> None:
    panel.get_by_role("button", name="Generation settings").click()
    fill_fields([(panel.get_by_label("number input for Max new tokens"), str(tokens))], confirm="Enter")


def wait_for_answers(page) -> None:
    for side in ("left", "right"):
        expect(page.locator(f"#stats-{side}")).to_contain_text("finished", timeout=SLOW)


def test_enter_sends_and_shift_enter_starts_a_new_line(page):
    panel = open_tab(page, "Compare")
    short_answers(panel)
    box = panel.get_by_label("Prompt", exact=True)
    expect(box).to_have_attribute("placeholder", re.compile(r"Enter sends, Shift\+Enter starts a new line"))
    box.click()
    box.press_sequentially("Say hi.")
    box.press("Shift+Enter")
    box.press_sequentially("Then say bye.")
    expect(box).to_have_value("Say hi.\nThen say bye.")  # a new line, nothing sent
    box.press("Enter")
    expect(box).to_have_value("", timeout=SLOW)  # sent: the box empties…
    wait_for_answers(page)
    question = page.locator("[data-testid='user']").first  # …and both lines went to the models
    expect(question).to_contain_text("Say hi.")
    expect(question).to_contain_text("Then say bye.")
    shot(page, "enter-sends")


# Every text the Compare tab shows, as it changes (loading lines flash by while a model loads).
WATCH_TEXT = """() => {
  window.seenTexts = [];
  const panel = [...document.querySelectorAll("[role=tabpanel]")].find(p => p.offsetParent !== null);
  new MutationObserver(() => window.seenTexts.push(panel.innerText))
    .observe(panel, {subtree: true, childList: true, characterData: true});
}"""
INPUT_VALUES = """() => {
  const panel = [...document.querySelectorAll("[role=tabpanel]")].find(p => p.offsetParent !== null);
  return [...panel.querySelectorAll("input, textarea")].map(i => i.value).join("\\n");
}"""


def assert_names_hidden(page, names: tuple[str, ...]) -> None:
    """No model name in anything the Compare tab showed since WATCH_TEXT, nor in any of its boxes' values."""
    seen = "\n".join(page.evaluate("() => window.seenTexts")) + page.locator("[role=tabpanel]:visible").inner_text()
    values = page.evaluate(INPUT_VALUES)
    for name in names:
        at = seen.find(name)
        assert at < 0, f"{name} was shown in blind mode: …{seen[max(0, at - 150):at + 100]}…"
        assert name not in values, f"{name} is in a box's value in blind mode"


def test_blind_mode_hides_the_models_until_reveal_or_vote(page, tiny_base, tiny_chat):
    names = (tiny_base.name, tiny_chat.name)
    panel = open_tab(page, "Compare")
    short_answers(panel)
    model_a = panel.get_by_label("Model A", exact=True)
    expect(model_a).to_have_value(str(tiny_base))
    panel.get_by_label("Blind mode (hide names, shuffle sides)").check()
    expect(panel.get_by_text("the models are hidden until you vote")).to_be_visible()
    expect(model_a).to_have_count(0)  # the pickers are gone, values and all
    expect(panel.locator(".pane-title").first).to_have_text("Left: Model 1")
    page.evaluate(WATCH_TEXT)

    prompt = panel.get_by_label("Prompt", exact=True)
    prompt.fill("Say hi.")
    prompt.press("Enter")
    wait_for_answers(page)  # the models loaded meanwhile: their loading lines named them
    assert_names_hidden(page, names)
    shot(page, "blind-hidden")

    panel.get_by_role("button", name="Reveal models").click()  # revealing restores the pickers and names
    expect(model_a).to_have_value(str(tiny_base))
    expect(panel.get_by_label("Model B", exact=True)).to_have_value(str(tiny_chat))
    expect(panel.locator(".pane-title").first).to_contain_text(re.compile("|".join(names)))
    expect(panel.get_by_text("the models are hidden until you vote")).to_have_count(0)
    shot(page, "blind-revealed")

    panel.get_by_text("Clear", exact=True).click()  # a new blind comparison: hidden again…
    expect(model_a).to_have_count(0)
    expect(panel.locator(".pane-title").first).to_have_text("Left: Model 1")
    page.evaluate(WATCH_TEXT)
    prompt.fill("Say bye.")
    prompt.press("Enter")
    wait_for_answers(page)
    assert_names_hidden(page, names)
    page.locator("#vote-left").click()  # …until the vote
    expect(page.locator("#vote-note")).to_contain_text("Saved as Left (", timeout=SLOW)
    expect(model_a).to_have_value(str(tiny_base))
    expect(panel.locator(".pane-title").first).to_contain_text(re.compile("|".join(names)))


def test_show_config_and_command_works_as_shown(page, running_app, tmp_path, tiny_base, monkeypatch):
    form = open_sft_form(page, "by-hand", str(tiny_base))
    form.get_by_role("button", name="Show config and command").click()
    command = page.locator("#train-command .cm-content")
    expect(command).to_contain_text("by-hand.yaml", timeout=SLOW)
    shot(page, "show-config")
    config_text = page.locator("#train-config .cm-content").inner_text()
    shown = yaml.safe_load(config_text)
    assert shown["name"] == "by-hand" and shown["base_model"] == str(tiny_base)
    where = tmp_path / "project"
    where.mkdir()
    seen = save_and_run_as_shown(command.inner_text(), config_text, where, monkeypatch)
    assert seen["cfg"].to_dict() == shown  # the run reads the config that was shown
    assert seen["folder"].path == running_app.data_dir / "runs" / "by-hand"


def test_a_refused_value_is_named_in_plain_words(page, running_app):
    open_tab(page, "Train")
    form = page.locator("#train-form-sft")
    form.get_by_role("button", name="Optimisation").click()
    rate = form.get_by_label("learning rate", exact=True)
    rate.fill("")
    rate.press_sequentially("fast")  # letters in a number box (Chromium keeps none of them: the box is empty)
    rate.press("Tab")
    form.get_by_role("button", name="Start", exact=True).click()
    toast = page.locator("[data-testid='toast-body']")
    expect(toast).to_contain_text("Learning rate must be a number")
    expect(toast).not_to_contain_text("**")
    expect(toast).not_to_contain_text("None")
    expect(form.get_by_text("Error", exact=True)).to_have_count(0)  # no other input is flagged (the name box was)
    shot(page, "refused-value")
    runs = [p for p in (running_app.data_dir / "runs").iterdir() if not p.name.startswith(".")]  # not the queue lock
    assert runs == []  # nothing was started


# Each checkbox in a Train form: its label is as wide as its text (not a sliver with the words cut off).
CHECKBOX_WIDTHS = """(form) => [...form.querySelectorAll("input[type=checkbox]")].map(box => {
  const label = box.closest("label");
  return [label.innerText.trim(), label.getBoundingClientRect().width, label.scrollWidth];
})"""


def test_train_form_checkboxes_are_readable(page):
    open_tab(page, "Train")
    for stage in ("sft", "reward", "ppo"):  # every stage with a checkbox (DPO's are SFT's)
        page.get_by_label(STAGE_LABELS[stage], exact=True).check()
        form = page.locator(f"#train-form-{stage}")
        expect(form).to_be_visible()
        for group in list(GROUPS[stage])[1:]:  # the first group is open already
            form.get_by_role("button", name=group).click()
        expect(form.locator("input[type=checkbox]").first).to_be_visible()
        widths = form.evaluate(CHECKBOX_WIDTHS)
        assert len(widths) >= 2, stage
        for text, width, needed in widths:
            assert text and width >= needed and width > 100, (stage, text, width, needed)
        shot(page, f"train-checkboxes-{stage}")
