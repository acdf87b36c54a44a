"""The Lecture tab's callbacks, called directly (no server, no model, no training process): the steps' view and
status, the timer's redraw-only-on-change, each step button's message or refusal, step 1's streamed answers, and the
buttons into the tabs with the details."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest

from playground import lecture
from playground.ratings.store import Store
from playground.runs.jobs import Jobs
from playground.runs.reward_model import RewardModels
from playground.ui import lecture_tab
from tests.preference_records import sample_records
from tests.test_lecture import eval_result, make_run

STATUSES, RESULTS, BUTTONS = slice(0, 5), slice(5, 10), slice(10, 15)


@pytest.fixture
def context(settings) -> lecture_tab.LectureContext:
    """What the tab works with; no model cache (nothing here loads a model) and runs that don't poll."""
    return lecture_tab.LectureContext(settings, None, Store(settings.ratings_db),  # type: ignore[arg-type]
                                      Jobs(settings, poll=False), RewardModels(settings))


def test_a_fresh_data_dir_shows_every_step_not_started_with_its_button_on(context):
    view = lecture_tab.lecture_view(context)
    assert len(view) == lecture_tab.VIEW_SIZE
    for number, status in enumerate(view[STATUSES], start=1):
        assert f'id="lecture-status-{number}"' in status and "<b>not started</b>" in status
    assert "Needs first:" in view[4] and "sft-gemma-cpu-demo" in view[4]  # PPO waits for its two runs
    assert all(button["interactive"] is True for button in view[BUTTONS])
    left, right, eval_table, votes_table = view[15:19]
    assert (left, right) == ("", "") and eval_table["visible"] is False and votes_table["visible"] is False
    assert all(part["visible"] is False for part in view[19:])  # step 5's charts and answers


def test_the_timer_redraws_only_when_a_file_the_steps_read_changed(context):
    opened = lecture_tab.opened(context)
    seen = opened[-1]
    assert seen == lecture.fingerprint(context.settings) and len(opened) == lecture_tab.VIEW_SIZE + 1
    assert lecture_tab.tick(context, seen) == [gr.skip()] * (lecture_tab.VIEW_SIZE + 1)
    for r in sample_records():
        context.store.save(r)
    redrawn = lecture_tab.tick(context, seen)
    assert redrawn[-1] != seen and "<b>done</b>" in redrawn[2] and "8 votes so far" in redrawn[2]
    assert redrawn[18]["visible"] is True and redrawn[18]["value"]["votes"].sum() == 8  # step 3's votes per pair


def test_ppo_before_its_runs_is_refused_with_what_it_needs(context):
    with pytest.raises(gr.Error, match="sft-gemma-cpu-demo.*reward-gemma-cpu-demo"):
        lecture_tab.run_step(context, "ppo", 0, progress=None)
    assert [p for p in context.settings.runs_dir.iterdir() if p.is_dir()] == []  # no run was made


def test_a_step_whose_run_is_going_has_nothing_to_do(context):
    make_run(context.settings, "sft-gemma-cpu-demo", "sft", "running", step=3)
    with pytest.raises(gr.Error, match="Step 2 is running: nothing to do now"):
        lecture_tab.run_step(context, "sft", 0, progress=None)


def test_a_step_that_is_not_started_queues_its_run(context, monkeypatch):
    started: list[str] = []

    def fake_start(stage, settings, jobs, store=None):
        started.append(stage)
        return f"{stage} queued."

    monkeypatch.setattr(lecture, "start_run", fake_start)
    assert lecture_tab.run_step(context, "reward", 0, progress=None) == "reward queued."
    assert started == ["reward"]


def test_step_2_evaluates_the_trained_run_with_the_examples_asked_for(context, monkeypatch):
    make_run(context.settings, "sft-gemma-cpu-demo", "sft", "finished", adapter="CAUSAL_LM")
    asked: list[int] = []

    def fake_evaluate(settings, cache, folder, per_family, progress):
        asked.append(per_family)
        progress(0.5, "halfway")
        return [eval_result("base", [True]), eval_result("tuned", [True])]

    monkeypatch.setattr(lecture_tab, "evaluate_run", fake_evaluate)
    steps: list[tuple[float, str]] = []
    message = lecture_tab.run_step(context, "sft", 3.0, progress=lambda fraction, desc: steps.append((fraction, desc)))
    assert message == "sft-gemma-cpu-demo evaluated: the table shows base vs tuned per held-out family."
    assert asked == [3] and steps == [(0.5, "halfway")]


def test_step_4_check_is_refused_until_there_are_votes_to_check_against(context):
    make_run(context.settings, "reward-gemma-cpu-demo", "reward", "finished", adapter="SEQ_CLS")
    with pytest.raises(gr.Error, match="step 3 first"):
        lecture_tab.run_step(context, "reward", 0, progress=None)


def stream(*texts: tuple[str, str], stored: bool, error: str = ""):
    """A stand-in for lecture.ask_both: each pair of texts as one update of both panes, the record at the end."""
    def ask_both(settings, cache, store, stop):
        comparison = SimpleNamespace(side_models=["base", "instruct"], record=None)
        for number, (left, right) in enumerate(texts, start=1):
            if number == len(texts) and stored:
                comparison.record = object()
            yield comparison, SimpleNamespace(text=left, status="", error=""), \
                SimpleNamespace(text=right, status="", error=error if number == len(texts) else "")
    return ask_both


def test_step_1_streams_both_answers_then_says_they_are_stored(context, monkeypatch):
    monkeypatch.setattr(lecture, "ask_both", stream(("The", ""), ("The moon", "In 1969"), stored=True))
    updates = list(lecture_tab.ask(context))
    assert len(updates) == 3 and updates[0][2] == gr.skip()
    assert "<h4>base</h4>" in updates[1][0] and "The moon" in updates[1][0] and "In 1969" in updates[1][1]
    assert updates[-1] == [gr.skip(), gr.skip(), "The answers are stored: they are the comparison step 1 shows."]


def test_step_1_says_nothing_was_stored_when_an_answer_did_not_finish(context, monkeypatch):
    monkeypatch.setattr(lecture, "ask_both", stream(("The moon", ""), stored=False, error="Out of memory"))
    updates = list(lecture_tab.ask(context))
    assert "<b>Error:</b> Out of memory" in updates[0][1]
    assert updates[-1][2] == "An answer did not finish (its pane says why), so nothing was stored."


def test_step_1_reports_a_comparison_that_could_not_start(context, monkeypatch):
    def broken(settings, cache, store, stop):
        raise ValueError("no such model")
        yield  # a generator, as the real one

    monkeypatch.setattr(lecture, "ask_both", broken)
    with pytest.raises(gr.Error, match="The comparison failed: no such model"):
        list(lecture_tab.ask(context))


def test_the_details_buttons_open_their_tab_and_runs_opens_with_the_steps_run(context):
    assert lecture_tab.open_tab("rate").selected == "rate"
    tabs, run = lecture_tab.open_step_run(context.settings, context.store, 2)
    assert tabs.selected == "runs" and run == gr.skip()  # no run of step 2 yet: Runs opens as it was
    make_run(context.settings, "ppo-gemma-cpu-demo", "ppo", "running")
    tabs, run = lecture_tab.open_step_run(context.settings, context.store, 5)
    assert tabs.selected == "runs" and run["value"] == "ppo-gemma-cpu-demo"
