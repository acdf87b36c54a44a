"""The Lecture tab, walked in a real browser: all five steps with their one button each, on tiny models (the data
dir's own recipes point the shipped ones at the tiny base and two steps), a refusal that changes nothing, the vote
in Rate, and the whole path read back by a new page."""

from __future__ import annotations

import re
import time

import pytest
import yaml
from playwright.sync_api import expect

from playground.lecture import RECIPE_NAMES, RECIPES
from tests.e2e.conftest import SLOW, fill_fields, open_tab, shot

pytestmark = pytest.mark.slow

SMALL = {"max_steps": 2, "batch_size": 2, "gradient_accumulation": 1, "max_length": 256, "save_steps": 2,
         "lora_r": 4, "lora_alpha": 8}
"""What the journey shrinks in each shipped recipe; the rest (data, stage settings, names) is the recipe's."""
PPO_SMALL = {"mini_batch_size": 2, "response_length": 8, "samples_per_step": 2, "answers_per_prompt": 2}
RUN = 3 * SLOW
"""A run: a training process starting on shared cores, two steps, its adapter saved."""


def tiny_recipes(data_dir, base) -> None:
    """``DATA_DIR/recipes/``: the shipped CPU recipes on the tiny base, two steps each (the Lecture reads these)."""
    own = data_dir / "recipes"
    own.mkdir()
    for stage, name in RECIPE_NAMES.items():
        data = yaml.safe_load((RECIPES / f"{name}.yaml").read_text()) | SMALL | {"base_model": str(base)}
        data |= PPO_SMALL if stage == "ppo" else {}
        (own / f"{name}.yaml").write_text(yaml.safe_dump(data))


def status(page, number: int):
    return page.locator(f"#lecture-status-{number}")


@pytest.mark.long  # among the heaviest: run by .ci/run after the README's suite (pytest -m long)
@pytest.mark.timeout(900)  # three training processes and an evaluation on shared CPU cores
def test_the_lecture_tab_walks_all_five_steps_and_reads_them_back(page, running_app, tiny_base, tmp_path):
    started = laps = time.monotonic()
    took: dict[str, float] = {}

    def lap(name: str) -> None:
        nonlocal laps
        took[name], laps = time.monotonic() - laps, time.monotonic()

    tiny_recipes(running_app.data_dir, tiny_base)
    runs = running_app.data_dir / "runs"
    lecture = page.get_by_role("tabpanel")
    expect(page.get_by_role("tab", name="Lecture", exact=True)).to_have_attribute("aria-selected", "true")  # first
    for number in range(1, 6):
        expect(status(page, number)).to_contain_text("not started")

    # Step 5 before steps 2 and 4 is refused, says why, and starts nothing.
    expect(page.locator("#lecture-step-5")).to_contain_text("Needs first: PPO needs step 2's SFT run")
    page.locator("#lecture-do-5").click()
    expect(page.locator("[data-testid='toast-body']")).to_contain_text("PPO needs step 2's SFT run")
    assert not [p for p in runs.iterdir() if p.is_dir()]  # no run folder

    lap("refusal")

    # 1. Both default models answer the lecture's prompt; the pair is stored and shown.
    page.locator("#lecture-do-1").click()
    expect(status(page, 1)).to_contain_text("done", timeout=SLOW)
    expect(page.locator("#lecture-result-1")).to_contain_text("moon landing")
    expect(page.locator("#lecture-answer-base h4")).to_have_text(str(tiny_base))
    expect(page.locator("#lecture-do-1")).to_have_text("Ask again")

    lap("1 compare")

    # 2. The SFT recipe trains (progress while it runs), then the same button evaluates on held-out families.
    page.locator("#lecture-do-2").click()
    expect(status(page, 2)).to_contain_text(re.compile(r"running|next part"), timeout=SLOW)
    expect(page.locator("#lecture-do-2")).to_have_text("Evaluate on held-out tasks", timeout=RUN)
    fill_fields([(lecture.get_by_label("Examples per family to evaluate (0 = all)"), "1")])
    page.locator("#lecture-do-2").click()
    expect(status(page, 2)).to_contain_text("done", timeout=SLOW)
    expect(page.locator("#lecture-eval")).to_contain_text("all tasks")
    expect(page.locator("#lecture-result-2")).to_contain_text("Held-out accuracy, all families")
    shot(page, "lecture-step-2")

    lap("2 sft+eval")

    # 3. The button opens Rate; one vote there shows up in the Lecture tab.
    page.locator("#lecture-do-3").click()
    rate = page.get_by_role("tabpanel")
    expect(page.get_by_role("tab", name="Rate", exact=True)).to_have_attribute("aria-selected", "true")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Name a colour.\n")
    rate.get_by_label("Upload a file").check()
    rate.locator("input[type=file]").set_input_files(str(prompts))
    fill_fields([(rate.get_by_label("number input for Max new tokens"), "8")], confirm="Enter")
    rate.get_by_role("button", name="Generate pairs").click()
    expect(page.locator("#rate-left")).to_be_enabled(timeout=SLOW)
    page.locator("#rate-left").click()
    expect(page.locator("#rate-progress")).to_contain_text("1 / 1 rated", timeout=SLOW)
    open_tab(page, "Lecture")
    expect(status(page, 3)).to_contain_text("1 votes so far (1 saying one answer is better)")
    expect(page.locator("#lecture-votes")).to_contain_text(tiny_base.name)

    lap("3 rate")

    # 4. The reward recipe trains; then the button checks it against the vote (agreement, length bias).
    page.locator("#lecture-do-4").click()
    expect(page.locator("#lecture-do-4")).to_have_text("Check it against your votes", timeout=RUN)
    expect(page.locator("#lecture-result-4")).to_contain_text("Held-out accuracy")
    page.locator("#lecture-do-4").click()
    expect(status(page, 4)).to_contain_text("done", timeout=SLOW)
    expect(page.locator("#lecture-result-4")).to_contain_text("Agrees with")

    lap("4 reward+check")

    # 5. PPO from step 2's run against step 4's: score and KL curves, and the answers.
    expect(page.locator("#lecture-step-5")).not_to_contain_text("Needs first")
    page.locator("#lecture-do-5").click()
    expect(status(page, 5)).to_contain_text("done", timeout=RUN)
    expect(page.locator("#lecture-result-5")).to_contain_text("Reward model score")
    expect(page.locator("#lecture-ppo-answers")).to_contain_text("answer")
    config = yaml.safe_load((runs / RECIPE_NAMES["ppo"] / "config.yaml").read_text())
    assert (config["sft_run"], config["reward_run"]) == (RECIPE_NAMES["sft"], RECIPE_NAMES["reward"])
    shot(page, "lecture-done")
    page.locator("#lecture-open-5").click()  # into the tab with the details: the PPO run, chosen
    expect(page.get_by_role("tab", name="Runs", exact=True)).to_have_attribute("aria-selected", "true")
    expect(page.locator("#runs-run input")).to_have_value(RECIPE_NAMES["ppo"], timeout=SLOW)
    expect(page.locator("#run-samples")).to_contain_text("answer", timeout=SLOW)  # its answers, not another run's
    open_tab(page, "Lecture")
    page.locator("#lecture-open-2").click()
    expect(page.locator("#runs-run input")).to_have_value(RECIPE_NAMES["sft"], timeout=SLOW)
    lap("5 ppo")
    walked = time.monotonic() - started

    # A new page reads the whole path back from the data dir (nothing is kept in the browser or the app).
    page.goto(running_app.url)
    for number in range(1, 6):
        expect(status(page, number)).to_contain_text("done")
    expect(page.locator("#lecture-eval")).to_contain_text("all tasks")
    lap("reload")
    print(f"lecture journey: {walked:.0f} s walking the five steps, {time.monotonic() - started:.0f} s in all; "
          + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in took.items()))
