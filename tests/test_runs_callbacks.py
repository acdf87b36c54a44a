"""The Runs tab's callbacks, called directly (no server, no training process): the list and a run's view, stop /
resume / delete and their messages, the PPO answer viewer, the timer's redraw-only-on-change, and the evaluation
buttons' refusals, cancel and saved results."""

from __future__ import annotations

import json
import threading

import gradio as gr
import pytest

from playground.data import evaluation
from playground.runs.jobs import Jobs
from playground.ui import runs_tab
from tests.test_lecture import eval_result, make_run


@pytest.fixture
def jobs(settings) -> Jobs:
    """The runs, not polling (made before any fake run: it would reap a "running" run with no live process)."""
    return Jobs(settings, poll=False)


def evaluator(settings, jobs) -> runs_tab.Evaluator:
    return runs_tab.Evaluator(settings, jobs, cache=None)  # type: ignore[arg-type]  # refused before any model loads


def test_the_list_picks_the_newest_run_and_shows_its_view(settings, jobs):
    make_run(settings, "sft-1", "sft", "finished", step=40, metrics=[{"step": 10, "loss": 2.5}])
    top = runs_tab.refresh(jobs, None, "gone")
    table, picker, overlay, progress, speed, *charts = top[:runs_tab.LISTING_SIZE + runs_tab.VIEW_SIZE - 2]
    assert list(table["name"]) == ["sft-1"] and picker["value"] == "sft-1" and overlay["value"] == ""
    assert "<b>finished</b> · step 40 / 40" in progress
    shown = [c for c in charts if c["visible"]]
    assert [c["label"] for c in shown] == [title for title, _, _ in runs_tab.CHARTS["sft"]]
    assert list(shown[0]["value"]["value"]) == [2.5]
    assert len(top) == runs_tab.LISTING_SIZE + runs_tab.VIEW_SIZE
    assert top[-1].startswith(f"python -m playground.train sft {settings.runs_dir / 'sft-1' / 'config.yaml'}\n")


def test_details_refuse_a_run_that_is_not_there_and_blank_with_none_picked(jobs):
    with pytest.raises(gr.Error, match="There is no run named 'no-such-run'"):
        runs_tab.details(jobs, "no-such-run", "")
    blank = runs_tab.details(jobs, None, "")
    assert blank[:2] == ["", ""] and blank[-2:] == ["", ""]
    assert all(c["visible"] is False for c in blank[2:-2]) and len(blank) == runs_tab.VIEW_SIZE


def test_another_runs_curves_are_overlaid_one_series_per_run(settings, jobs):
    make_run(settings, "sft-1", "sft", "finished", metrics=[{"step": 1, "loss": 2.0}])
    make_run(settings, "sft-2", "sft", "finished", metrics=[{"step": 1, "loss": 1.0}])
    loss = runs_tab.details(jobs, "sft-1", "sft-2")[2]
    assert sorted(set(loss["value"]["series"])) == ["sft-1 · loss", "sft-2 · loss"]
    assert set(runs_tab.details(jobs, "sft-1", "deleted")[2]["value"]["series"]) == {"loss"}  # a gone overlay: none


def test_stop_cancels_a_queued_run_and_says_so(settings, jobs, capsys):
    make_run(settings, "sft-1", "sft", "queued")
    top = runs_tab.run_action(jobs, "stop", "sft-1", "")
    assert "sft-1: cancelled." in capsys.readouterr().out  # the gr.Info toast, printed outside a request
    assert top[1]["value"] == "sft-1" and "<b>stopped</b>" in top[runs_tab.LISTING_SIZE]
    with pytest.raises(gr.Error, match=r"sft-1 is not running \(stopped\)"):
        runs_tab.run_action(jobs, "stop", "sft-1", "")


def test_resume_and_delete_refuse_a_running_run(settings, jobs):
    make_run(settings, "sft-1", "sft", "running")
    with pytest.raises(gr.Error, match="sft-1 is already running"):
        runs_tab.run_action(jobs, "resume", "sft-1", "")
    with pytest.raises(gr.Error, match="sft-1 is running: stop it first"):
        runs_tab.run_action(jobs, "delete", "sft-1", "")


def test_delete_removes_the_run_and_picks_the_next(settings, jobs, capsys):
    make_run(settings, "sft-1", "sft", "finished")
    make_run(settings, "sft-2", "sft", "failed", error="Out of memory")
    top = runs_tab.run_action(jobs, "delete", "sft-2", "sft-2")
    assert "sft-2 deleted." in capsys.readouterr().out
    assert list(top[0]["name"]) == ["sft-1"] and top[1]["value"] == "sft-1" and top[2]["value"] == ""
    assert not (settings.runs_dir / "sft-2").exists()


@pytest.mark.parametrize("action", ["stop", "resume", "delete"])
def test_an_action_with_no_run_picked_or_an_unknown_one_is_refused(jobs, action):
    with pytest.raises(gr.Error, match="Pick a run first"):
        runs_tab.run_action(jobs, action, "", "")
    with pytest.raises(gr.Error, match="There is no run named 'no-such-run'"):
        runs_tab.run_action(jobs, action, "no-such-run", "")


def test_the_answer_viewer_shows_ppo_answers_per_step_and_hides_for_other_stages(settings, jobs):
    folder = make_run(settings, "ppo-1", "ppo", "running", step=2)
    folder.samples_file.write_text("".join(json.dumps({"step": step, "prompt": f"p{step}", "answer": "a",
                                                       "score": 0.5, "kl": 0.1}) + "\n" for step in (1, 2)))
    box, steps, table = runs_tab.answers(jobs, "ppo-1", None)
    assert box["visible"] is True and steps["choices"] == ["latest", "2", "1"] and steps["value"] == "latest"
    assert list(table["prompt"]) == ["p2"]
    steps, table = runs_tab.step_answers(jobs, "ppo-1", "1")
    assert steps["value"] == "1" and list(table["prompt"]) == ["p1"]
    make_run(settings, "sft-1", "sft", "finished")
    assert runs_tab.answers(jobs, "sft-1", None)[0]["visible"] is False
    with pytest.raises(gr.Error, match="There is no run named"):
        runs_tab.step_answers(jobs, "gone", "1")
    assert runs_tab.answers_now(jobs, "gone", "1")[0]["visible"] is False  # deleted meanwhile: empty, no error


def test_the_timer_redraws_only_when_a_run_changed(settings, jobs):
    folder = make_run(settings, "sft-1", "sft", "running", step=1)
    first = runs_tab.tick(jobs, None, "", (), "latest")
    seen = first[runs_tab.LISTING_SIZE + runs_tab.VIEW_SIZE]
    assert first[1]["value"] == "sft-1" and seen and len(first) == runs_tab.LISTING_SIZE + runs_tab.VIEW_SIZE + 4
    again = runs_tab.tick(jobs, "sft-1", "", seen, "latest")
    assert again == [gr.skip()] * len(first)
    folder.update_status(step=2)
    assert "step 2 / 40" in runs_tab.tick(jobs, "sft-1", "", seen, "latest")[runs_tab.LISTING_SIZE]


def test_evaluating_is_refused_until_a_run_with_an_adapter_is_picked(settings, jobs):
    tool = evaluator(settings, jobs)
    with pytest.raises(gr.Error, match="Pick a finished or stopped run first"):
        runs_tab.run_evaluation(tool, "", 0, progress_bar=None)
    with pytest.raises(gr.Error, match="There is no run named 'no-such-run'"):
        runs_tab.run_evaluation(tool, "no-such-run", 0, progress_bar=None)
    make_run(settings, "sft-1", "sft", "running")
    with pytest.raises(gr.Error, match="no adapter yet"):
        runs_tab.run_evaluation(tool, "sft-1", 0, progress_bar=None)
    make_run(settings, "rm-1", "reward", "finished", adapter="SEQ_CLS")
    with pytest.raises(gr.Error, match="This is a reward model"):
        runs_tab.run_bigbench(tool, "rm-1", "task.json", "", 10, progress_bar=None)
    with pytest.raises(gr.Error, match="Pick a finished or stopped run first"):
        runs_tab.run_bigbench(tool, None, "task.json", "", 10, progress_bar=None)


def test_cancel_stops_the_evaluation_under_way_and_a_new_one_starts_afresh(settings, jobs, monkeypatch):
    make_run(settings, "sft-1", "sft", "finished", adapter="CAUSAL_LM")
    tool = evaluator(settings, jobs)
    runs_tab.cancel_evaluation(tool)
    assert tool.stop.is_set()
    seen: list[bool] = []

    def fake_evaluate(settings, cache, folder, per_family, progress, stop: threading.Event):
        seen.append(stop.is_set())
        progress(0.5, "halfway")
        return [eval_result("base", [True, False]), eval_result("base + sft-1", [True, True])]

    monkeypatch.setattr(runs_tab, "evaluate_run", fake_evaluate)
    steps: list[tuple[float, str]] = []
    table, chart = runs_tab.run_evaluation(tool, "sft-1", 2,
                                           progress_bar=lambda fraction, desc: steps.append((fraction, desc)))
    assert seen == [False] and steps == [(0.5, "halfway")]  # a cancel before Evaluate doesn't stop the next one
    assert not table.empty and chart is not None


def test_a_runs_saved_evaluation_is_shown_when_it_is_picked(settings, jobs):
    folder = make_run(settings, "sft-1", "sft", "finished", adapter="CAUSAL_LM")
    assert runs_tab.saved_evaluation(jobs, "sft-1") == [None, None]
    evaluation.save([eval_result("base", [True, False]), eval_result("base + sft-1", [True, True])], folder.path)
    table, chart = runs_tab.saved_evaluation(jobs, "sft-1")
    assert not table.empty and chart is not None
    assert runs_tab.saved_evaluation(jobs, "no-such-run") == [None, None]
    (folder.path / evaluation.EVAL_FILE).write_text("{damaged")
    assert runs_tab.saved_evaluation(jobs, "sft-1") == [None, None]
