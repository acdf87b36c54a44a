"""What a user does, in a real browser: compare and vote, see it in History and the Leaderboard, export data TRL
trains on; rate a batch with the keyboard and reload; train an adapter, stop, resume, and compare with it."""

from __future__ import annotations

import json
import math
import re
import zipfile

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from playground.ratings.store import Store
from playground.runs.run_folder import RunFolder
from tests.e2e.conftest import SLOW, fill_fields, open_sft_form, open_tab, shot

pytestmark = pytest.mark.slow

PROMPT = "Explain the moon landing to a six year old."

# Records every distinct length each answer pane's text goes through, to tell streaming from one late update.
WATCH_STREAMING = """() => {
  window.answerLengths = [new Set(), new Set()];
  new MutationObserver(() => document.querySelectorAll("[data-testid='bot']").forEach((answer, i) => {
    if (i < 2) window.answerLengths[i].add(answer.innerText.length);
  })).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def send_prompt(page, text: str = PROMPT, tokens: int = 32) -> None:
    """In Compare: keep answers short, type a prompt, send, and wait until both panes say they finished."""
    panel = open_tab(page, "Compare")
    panel.get_by_role("button", name="Generation settings").click()
    fill_fields([(panel.get_by_label("number input for Max new tokens"), str(tokens))], confirm="Enter")
    panel.get_by_label("Prompt", exact=True).fill(text)
    panel.get_by_role("button", name="Send", exact=True).click()
    for side in ("left", "right"):
        expect(page.locator(f"#stats-{side}")).to_contain_text("finished", timeout=SLOW)


def test_compare_streams_both_panes_and_shows_stats(page):
    page.evaluate(WATCH_STREAMING)
    send_prompt(page, tokens=48)
    for side in ("left", "right"):
        expect(page.locator(f"#stats-{side}")).to_contain_text(re.compile(r"TTFT [\d.]+ s · [\d.]+ tok/s · \d+ tokens"))
    answers = page.locator("[data-testid='bot']")
    expect(answers).to_have_count(2)
    for answer in answers.all():
        expect(answer).not_to_have_text(re.compile(r"^\s*$"))
    # Each pane grew through several versions (streamed), not one answer dropped in at the end.
    lengths = page.evaluate("() => window.answerLengths.map(seen => seen.size)")
    assert min(lengths) >= 5, lengths
    expect(page.locator("#vote-right")).to_be_enabled()  # a complete pair can be voted on
    shot(page, "compare")


def test_a_vote_reaches_history_leaderboard_and_an_export_trl_reads(page, running_app, tmp_path, tiny_chat):
    board = open_tab(page, "Leaderboard")
    expect(board.get_by_text("No votes from people between named models yet")).to_be_visible()

    send_prompt(page)
    page.locator("#vote-right").click()
    expect(page.locator("#vote-note")).to_contain_text("Saved as Right (", timeout=SLOW)
    expect(page.locator("#vote-note")).to_contain_text("tiny-chat) is better")
    shot(page, "vote")

    history = open_tab(page, "History")
    row = history.get_by_role("row").filter(has=page.get_by_role("gridcell", name=PROMPT, exact=True))
    expect(row).to_have_count(1)
    expect(row).to_contain_text("B better")
    expect(history.get_by_text("1 of 1 votes shown.")).to_be_visible()
    shot(page, "history")

    board = open_tab(page, "Leaderboard")
    expect(board.get_by_text("1 votes from people between 2 models")).to_be_visible(timeout=SLOW)
    table = board.get_by_role("grid", name="Leaderboard")
    expect(table.get_by_role("row").nth(1)).to_contain_text("tiny-chat")  # rank 1: the model voted better
    expect(table.get_by_role("row").nth(2)).to_contain_text("tiny-base")
    shot(page, "leaderboard")

    history = open_tab(page, "History")
    history.get_by_role("button", name="Export for training").click()
    history.get_by_role("button", name="Export votes").click()
    link = history.locator("a[download]")
    expect(link).to_be_visible(timeout=SLOW)
    with page.expect_download(timeout=SLOW) as download:
        link.click()
    archive = tmp_path / "export.zip"
    download.value.save_as(archive)
    shot(page, "export")
    with zipfile.ZipFile(archive) as zipped:
        name = next(n for n in zipped.namelist() if n.endswith("/preference.jsonl"))
        rows = [json.loads(line) for line in zipped.read(name).decode().splitlines()]
        zipped.extract(name, tmp_path)
    assert len(rows) == 1 and rows[0]["prompt"] == [{"role": "user", "content": PROMPT}]
    reward_trainer_takes_a_step(tmp_path / name, tiny_chat, tmp_path)


def reward_trainer_takes_a_step(path, model_dir, tmp_path) -> None:
    """TRL's RewardTrainer trains a step on the downloaded preference file (a tiny sequence classifier)."""
    from datasets import load_dataset
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    config = AutoConfig.from_pretrained(model_dir, num_labels=1, pad_token_id=tokenizer.pad_token_id)
    model = AutoModelForSequenceClassification.from_config(config)
    data = load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))
    args = RewardConfig(output_dir=str(tmp_path / "run"), use_cpu=True, bf16=False, max_steps=1,
                        per_device_train_batch_size=1, report_to=[], save_strategy="no", logging_steps=1)
    trainer = RewardTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    loss = trainer.train().training_loss
    assert math.isfinite(loss) and loss > 0  # −log σ(r_chosen − r_rejected) of a real pair


def test_rating_with_the_keyboard_survives_a_reload(page, running_app, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Name a colour.\nSay hello.\nCount to three.\nName a fruit.\n")
    panel = open_tab(page, "Rate")
    panel.get_by_label("Upload a file").check()
    panel.locator("input[type=file]").set_input_files(str(prompts))
    fill_fields([(panel.get_by_label("number input for Max new tokens"), "8")], confirm="Enter")
    panel.get_by_role("button", name="Generate pairs").click()
    progress = page.locator("#rate-progress")
    expect(progress).to_contain_text("0 / 4 rated", timeout=SLOW)

    def press(key: str, expected: str) -> None:
        """Wait until a pair can be rated, press a key (on the page, not in a box), see the progress change."""
        expect(page.locator("#rate-left")).to_be_enabled(timeout=SLOW)
        page.locator("#rate-prompt").click()
        page.keyboard.press(key)
        expect(progress).to_contain_text(expected, timeout=SLOW)

    expect(page.locator("#rate-left-answer")).not_to_be_empty(timeout=SLOW)
    press("1", "1 / 4 rated")  # left better
    press("s", "1 / 4 rated · 1 skipped")
    press("2", "2 / 4 rated")  # right better…
    press("u", "1 / 4 rated")  # …undone: the same pair comes back
    press("3", "2 / 4 rated · 1 skipped")  # tie
    expect(page.locator("#rate-prompt")).to_contain_text("Name a fruit.")
    shot(page, "rate")

    page.reload()
    rate = open_tab(page, "Rate")
    # This browser's batch and its progress come back from disk, with the pair that was waiting.
    expect(progress).to_contain_text("2 / 4 rated · 1 skipped", timeout=SLOW)
    expect(page.locator("#rate-prompt")).to_contain_text("Name a fruit.", timeout=SLOW)
    why = rate.get_by_label("Why? (optional, one line)")
    why.click()
    page.keyboard.type("2")  # a digit typed into a box is text, not a vote…
    expect(why).to_have_value("2")
    press("4", "3 / 4 rated · 1 skipped")  # …and this pair is voted with the key pressed outside it
    shot(page, "rate-after-reload")

    records = sorted(Store(running_app.data_dir / "ratings.sqlite3").comparisons(voted_only=False),
                     key=lambda r: r.position)
    on_screen = [None if r.winner is None else "left" if r.winner == r.left_side else
                 "right" if r.winner in ("a", "b") else r.winner for r in records]
    assert on_screen == ["left", None, "tie", "both_bad"]
    assert records[1].skipped and records[3].rationale == "2"


# The first chart in the Runs tab (the loss) is readable: it draws a line through at least 20 points, and its axes
# are numeric — a handful of tick labels. Category axes instead get one label per distinct step and value.
READABLE_CHART = """() => {
  const svg = document.querySelector("#runs-charts svg");
  const path = svg && svg.querySelector(".mark-line path");
  const points = ((path && path.getAttribute("d")) || "").split("L").length;
  return points >= 20 && svg.querySelectorAll("g.role-axis-label text").length <= 40;
}"""


def chart_is_readable(page, timeout: float) -> bool:
    try:
        page.wait_for_function(READABLE_CHART, timeout=timeout)
    except PlaywrightTimeout:
        return False
    return True


@pytest.mark.long  # among the heaviest: run by .ci/run after the README's suite (pytest -m long)
@pytest.mark.timeout(600)  # a training process, twice, on shared CPU cores
def test_train_stop_resume_then_compare_with_the_adapter(page, running_app, tmp_path, tiny_base):
    data = tmp_path / "mini.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"Say {w}.", "input": "", "output": f"{w} {w}."}) + "\n"
                            for w in ["hi", "yo", "ok", "no"] * 8))
    form = open_sft_form(page, "e2e-sft", str(tiny_base))
    form.locator(".token", has_text="instructions").get_by_role("button").click()  # not the bundled set…
    datasets = form.get_by_label("datasets", exact=True)
    datasets.fill(str(data))  # …but this small file
    datasets.press("Enter")
    expect(form.locator(".token")).to_have_text([str(data)])
    form.get_by_role("button", name="LoRA / QLoRA").click()
    form.get_by_role("button", name="Optimisation").click()
    fill_fields([(form.get_by_label(label, exact=True), value) for label, value in (
        ("max steps", "300"), ("batch size", "2"), ("gradient accumulation", "1"), ("max length", "64"),
        ("eval fraction", "0"), ("save steps", "5"), ("lora r", "4"), ("lora alpha", "8"))])
    form.get_by_role("button", name="Start", exact=True).click()
    expect(page.locator("#train-message")).to_contain_text("Run e2e-sft started", timeout=SLOW)

    runs = open_tab(page, "Runs")
    progress = page.locator("#run-progress")
    expect(progress).to_contain_text(re.compile(r"running · step ([3-9]|\d\d+) / 300"), timeout=SLOW)
    # The loss chart draws a line through the points logged so far: a Vega path that moves, then draws through
    # 19 more points (M…L…L…); before the first point there is no path, or an empty one.
    line = page.locator("#runs-charts .mark-line path").first
    expect(line).to_have_attribute("d", re.compile(r"^M[\d.,-]+(L[\d.,-]+){19}"), timeout=SLOW)
    shot(page, "runs-running")
    # Runs was opened before the run logged anything: the charts were first drawn from an empty table, and must
    # still get numeric axes (not one category label per step and value) once points arrive.
    assert page.evaluate(READABLE_CHART), "the live loss chart has category axes (artifacts/e2e/runs-running.png)"

    runs.get_by_role("button", name="Stop", exact=True).click()
    expect(progress).to_contain_text("stopped", timeout=SLOW)
    stopped_at = int(re.search(r"step (\d+) /", progress.inner_text()).group(1))
    assert 3 <= stopped_at < 300
    shot(page, "runs-stopped")
    runs.get_by_role("button", name="Resume", exact=True).click()
    expect(progress).to_contain_text(re.compile(r"(queued|starting|running)"), timeout=SLOW)
    expect(progress).to_contain_text("finished · step 300 / 300", timeout=4 * SLOW)
    folder = RunFolder(running_app.data_dir / "runs" / "e2e-sft")
    assert f"Resuming from checkpoint-{stopped_at}" in folder.log.read_text()  # continued, not started over
    steps = [m["step"] for m in folder.metrics() if "loss" in m]
    assert steps == sorted(set(steps)) and steps[-1] == 300, steps  # one loss per step, no step trained twice
    shot(page, "runs-finished")
    assert chart_is_readable(page, timeout=10_000), "no readable loss chart (artifacts/e2e/runs-finished.png)"

    compare = open_tab(page, "Compare")
    compare.get_by_role("button", name="Refresh model list").click()
    model_b = compare.get_by_label("Model B", exact=True)
    model_b.click()
    page.get_by_role("option", name=re.compile(r"^tiny-base \+ e2e-sft")).click()  # picked from the list
    expect(model_b).to_have_value(re.compile(r"^tiny-base \+ e2e-sft"))
    send_prompt(page, "Say hi.")
    expect(page.locator(".pane-title").filter(has_text="Right:").first).to_contain_text("tiny-base + e2e-sft")
    expect(page.locator("[data-testid='bot']").nth(1)).not_to_have_text(re.compile(r"^\s*(Error:.*)?$"))
    shot(page, "compare-adapter")
