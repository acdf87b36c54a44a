"""The Reward tab with no reward run: a message saying how to make one, no empty tables, both Score buttons off
until a reward run exists and is picked (checked on the built tab and through its callbacks); and its callbacks
called directly (no server, a stand-in reward model): scoring, the check against the votes and their refusals."""

from __future__ import annotations

import json

import gradio as gr
import pytest

from playground.ratings.store import Store
from playground.runs.jobs import Jobs
from playground.runs.reward_model import RewardModelError, RewardModels
from playground.runs.run_folder import RunFolder
from playground.ui import reward_tab
from tests.preference_records import EARLIER, record


def make_reward_run(settings, name: str = "rm-1") -> None:
    """A reward run's saved adapter as the Reward tab lists it (no weights: nothing here loads it)."""
    adapter = settings.runs_dir / name / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"task_type": "SEQ_CLS"}))
    (adapter / "playground.json").write_text(json.dumps({"stage": "reward", "run": name, "base_model": "tiny-base",
                                                         "prompt_format": "chat", "max_length": 256}))


def build(settings) -> tuple[gr.Blocks, dict]:
    """The built tab and its parts by role: the Score buttons, the agreement tables, the description."""
    with gr.Blocks() as app, gr.Tab("Reward") as tab:
        reward_tab.build(Jobs(settings), Store(settings.ratings_db), RewardModels(settings), tab)
    blocks = list(app.blocks.values())
    buttons = {b.value: b for b in blocks if isinstance(b, gr.Button)}
    tables = [b for b in blocks if isinstance(b, gr.Dataframe)]
    about = next(b for b in blocks if getattr(b, "elem_id", None) == "reward-about")
    return app, {"score": buttons["Score both"], "check": buttons["Score stored comparisons"], "tables": tables,
                 "about": about}


def shown(block) -> bool:
    """Whether a block is visible with every container above it."""
    while block is not None:
        if getattr(block, "visible", True) is False:
            return False
        block = getattr(block, "parent", None)
    return True


def test_no_reward_run_says_how_to_make_one_and_offers_nothing_to_press(settings):
    app, parts = build(settings)
    assert "No reward model yet" in parts["about"].value and "**Train**" in parts["about"].value
    assert "Reward model" in parts["about"].value  # the stage to pick
    assert parts["score"].interactive is False and parts["check"].interactive is False
    assert len(parts["tables"]) == 2 and not any(shown(table) for table in parts["tables"])  # no "1 2 3" headers
    text, score, check = reward_tab.run_view(settings, Jobs(settings), None)  # the tab opened again, still no run
    assert "No reward model yet" in text and score["interactive"] is False and check["interactive"] is False


def test_a_reward_run_turns_the_buttons_on(settings):
    build(settings)
    make_reward_run(settings)  # finished while the page was open: Refresh (or opening the tab) finds it
    jobs = Jobs(settings)
    text, score, check = reward_tab.run_view(settings, jobs, "rm-1")
    assert "tiny-base" in text and score["interactive"] is True and check["interactive"] is True
    text, score, check = reward_tab.run_view(settings, jobs, "no-such-run")
    assert "No reward model 'no-such-run'" in text and score["interactive"] is False


def test_the_description_gives_the_trained_models_held_out_accuracy(settings):
    make_reward_run(settings)
    folder = RunFolder(settings.runs_dir / "rm-1")
    folder.config.write_text("name: rm-1\n")
    folder.append_metrics({"step": 0, "eval_accuracy": 0.5})  # the untrained score head's, before the first step
    text, _ = reward_tab.describe(settings, Jobs(settings), "rm-1")
    assert "held-out accuracy" not in text  # nothing trained measured yet
    folder.append_metrics({"step": 20, "eval_accuracy": 0.925})
    text, _ = reward_tab.describe(settings, Jobs(settings), "rm-1")
    assert "held-out accuracy 0.93 (last eval)" in text


def test_a_tab_built_with_a_reward_run_picks_it_and_is_usable(settings):
    make_reward_run(settings)
    app, parts = build(settings)
    assert "tiny-base" in parts["about"].value
    assert parts["score"].interactive is not False and parts["check"].interactive is not False


def test_picking_another_run_hides_the_previous_agreement(settings):
    make_reward_run(settings)
    text, score, check, summary, results = reward_tab.switch_run(settings, Jobs(settings), "rm-1")
    assert summary == "" and results["visible"] is False and score["interactive"] is True


# ---------------------------------------------------------------------------------------------- the callbacks


class FakeRewardModel:
    """Scores an answer by its length in words (no model loaded): longer is better, a known reward-model failure."""

    def score(self, items):
        return [float(len(answer.split())) for _, _, answer in items]


class FakeRewardModels:
    """The app's reward models with one run, ``rm-1``, scoring by length; any other name is no run."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def get(self, name: str) -> FakeRewardModel:
        self.asked.append(name)
        if name != "rm-1":
            raise RewardModelError(f"No reward model {name!r}. Reward models: rm-1.")
        return FakeRewardModel()


@pytest.mark.parametrize("args, message", [
    (("", "Hi", "", "a", "b"), "Pick a reward model first"),
    (("rm-1", "   ", "", "a", "b"), "empty|Type"),
    (("rm-1", "Hi", "", "a", "  "), "Type both answers"),
    (("no-such-run", "Hi", "", "a", "b"), "Couldn't score with no-such-run: No reward model 'no-such-run'"),
])
def test_scoring_is_refused_with_a_message_saying_what_is_missing(args, message):
    with pytest.raises(gr.Error, match=message):
        reward_tab.score_pair(FakeRewardModels(), *args)


def test_scoring_two_answers_says_which_the_model_prefers_and_by_how_much():
    models = FakeRewardModels()
    text, data = reward_tab.score_pair(models, "rm-1", " Hi ", "", "Hello there, friend.", "Hi.",
                                       [{"role": "user", "content": "Earlier"}, {"role": "assistant", "content": "Ok"}])
    assert text.startswith("**rm-1** prefers **A**: r(A) = +3.000, r(B) = +1.000, margin r(A) − r(B) = +2.000")
    assert data["prefers"] == "a" and data["margin"] == 2.0 and 0.88 < data["p_a_better"] < 0.89
    assert reward_tab.score_pair(models, "rm-1", "Hi", "", "Same.", "Also.")[1]["prefers"] == "neither"


def test_checking_against_the_votes_is_refused_without_a_run_or_a_decisive_vote(settings):
    store = Store(settings.ratings_db)
    with pytest.raises(gr.Error, match="Pick a reward model first"):
        reward_tab.check_votes(settings, store, FakeRewardModels(), None, 0)
    store.save(record("tie"))
    store.save(record("both_bad"))
    with pytest.raises(gr.Error, match="No comparison is voted Left or Right is better yet"):
        reward_tab.check_votes(settings, store, FakeRewardModels(), "rm-1", 0)


def test_checking_against_the_votes_counts_agreement_and_saves_it_for_the_lecture(settings):
    make_reward_run(settings)
    store = Store(settings.ratings_db)
    store.save(record("a", answer_a="A long and careful answer.", answer_b="No."))  # the longer one won: agrees
    store.save(record("b", answer_a="A long and careless answer.", answer_b="Yes.", rater="bob"))  # disagrees
    text, by_rater, by_pair, plot = reward_tab.check_votes(settings, store, FakeRewardModels(), "rm-1", 0)
    assert text.startswith("**rm-1** agrees with **50%** of 2 human votes (50 % = chance).")
    assert set(by_rater["rater"]) == {"ann", "bob"} and len(by_pair) == 1 and plot is not None
    assert json.loads((settings.runs_dir / "rm-1" / "agreement.json").read_text())["votes"] == 2
    text = reward_tab.check_votes(settings, store, FakeRewardModels(), "rm-1", 1)[0]  # the newest vote only
    assert "of 1 human votes" in text


def test_filling_from_a_stored_comparison_copies_its_prompt_answers_and_earlier_turns(settings):
    store = Store(settings.ratings_db)
    saved = store.save(record("a", prompt="Continue.", system="Be brief.", earlier=EARLIER))
    prompt, system, a, b, earlier = reward_tab.fill(store, saved.id)
    assert (prompt, system, a, b) == ("Continue.", "Be brief.", saved.a.response, saved.b.response)
    assert earlier == EARLIER
    assert reward_tab.fill(store, "no-such-id") == [gr.skip()] * 5 and reward_tab.fill(store, None)[0] == gr.skip()
    assert reward_tab.new_conversation() == []


def test_refresh_lists_the_reward_runs_keeping_the_picked_one_and_the_newest_comparisons(settings):
    store = Store(settings.ratings_db)
    make_reward_run(settings, "rm-1")
    make_reward_run(settings, "rm-2")
    store.save(record(None, prompt="Not voted yet,   but   listed"))
    runs, stored = reward_tab.run_choices(settings, store, "rm-1")
    assert runs["choices"] == ["rm-1", "rm-2"] and runs["value"] == "rm-1"
    assert reward_tab.run_choices(settings, store, "gone")[0]["value"] == "rm-2"  # else the newest
    assert [label.split(" · ")[1] for label, _ in stored["choices"]] == ["Not voted yet, but listed"]
    assert reward_tab.show_results() == gr.update(visible=True)
