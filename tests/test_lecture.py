"""The Lecture tab's state, derived from a data dir with fabricated run folders, saved evaluations, reward checks
and store records: every step's status, its result and what its button does — and the refusals that change
nothing."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from playground import lecture
from playground.data import evaluation
from playground.lecture import DONE, FAILED, NEXT, NOT_STARTED, RUNNING, LectureError
from playground.ratings.store import Store
from playground.runs import reward_model
from playground.runs.jobs import Jobs
from playground.runs.run_folder import RunFolder
from tests.preference_records import record, sample_records


def make_run(settings, name: str, stage: str, state: str, *, adapter: str | None = None, step: int = 0,
             max_steps: int = 40, metrics: list[dict] | None = None, error: str = "") -> RunFolder:
    """A run folder as the run system leaves it: config.yaml, status.json, metrics, optionally a saved adapter
    (``adapter`` = its task type: CAUSAL_LM or SEQ_CLS)."""
    folder = RunFolder(settings.runs_dir / name)
    folder.path.mkdir(parents=True)
    folder.config.write_text(f"name: {name}\n")
    folder.update_status(state=state, stage=stage, step=step, max_steps=max_steps, error=error)
    for row in metrics or []:
        folder.append_metrics(row)
    if adapter:
        folder.adapter.mkdir()
        (folder.adapter / "adapter_config.json").write_text(json.dumps({"task_type": adapter}))
        (folder.adapter / "playground.json").write_text(json.dumps(
            {"stage": stage, "run": name, "base_model": "gemma-3-270m", "prompt_format": "instruction",
             "max_length": 256}))
    return folder


def states(settings) -> dict[str, lecture.StepState]:
    return {s.key: s for s in lecture.lecture_state(settings, Store(settings.ratings_db))}


def eval_result(model: str, correct: list[bool]) -> evaluation.EvalResult:
    rows = [{"id": f"x{i}", "task": "capitals" if i % 2 else "yes/no", "answer": "a", "output": "a" if ok else "b",
             "correct": ok} for i, ok in enumerate(correct)]
    return evaluation.EvalResult(model=model, prompt_format="instruction", rows=rows)


def test_a_fresh_data_dir_has_every_step_not_started_and_ppo_waiting_for_its_runs(settings):
    steps = lecture.lecture_state(settings)
    assert [s.number for s in steps] == [1, 2, 3, 4, 5]
    assert [s.key for s in steps] == ["compare", "sft", "rate", "reward", "ppo"]
    assert all(s.status == NOT_STARTED and s.point for s in steps)
    assert [s.action for s in steps] == ["compare", "train", "rate", "train", "train"]
    assert [s.blocked == "" for s in steps] == [True, True, True, True, False]
    assert "sft-gemma-cpu-demo" in steps[4].blocked and "reward-gemma-cpu-demo" in steps[4].blocked
    assert [steps[i].run for i in (1, 3, 4)] == ["sft-gemma-cpu-demo", "reward-gemma-cpu-demo",
                                                  "ppo-gemma-cpu-demo"]


def test_ppo_before_its_sft_and_reward_runs_is_refused_and_changes_nothing(settings):
    jobs = Jobs(settings, poll=False)
    make_run(settings, "sft-gemma-cpu-demo", "sft", "finished", adapter="CAUSAL_LM")  # the reward run is missing
    before = sorted(p.name for p in settings.runs_dir.iterdir())
    with pytest.raises(LectureError, match="step 4's reward run reward-gemma-cpu-demo trained first"):
        lecture.start_run("ppo", settings, jobs)
    assert sorted(p.name for p in settings.runs_dir.iterdir()) == before
    assert states(settings)["ppo"].status == NOT_STARTED


def test_the_lecture_prompt_is_the_moon_landing_example():
    prompt = lecture.lecture_prompt()
    assert "moon landing" in prompt and "6 year old" in prompt


def test_step_1_shows_the_newest_stored_comparison_of_the_default_models_on_the_lecture_prompt(settings):
    store = Store(settings.ratings_db)
    prompt = lecture.lecture_prompt()
    store.save(record(None, prompt="Something else.", model_a=settings.model_a, model_b=settings.model_b))
    store.save(record(None, prompt=prompt, model_a=settings.model_a, model_b="another-model"))
    assert states(settings)["compare"].status == NOT_STARTED  # another prompt, another pair of models
    old = record(None, prompt=prompt, model_a=settings.model_b, model_b=settings.model_a, answer_a="older",
                 voted_at=None)
    store.save(old)
    new = store.save(record(None, prompt=prompt, model_a=settings.model_a, model_b=settings.model_b,
                            answer_a="The moon landing was…", voted_at=None))
    step = states(settings)["compare"]
    assert step.status == DONE and step.comparison.id == new.id and step.comparison.a.response == "The moon landing was…"
    assert step.action == "compare" and prompt in step.result


def test_step_2_follows_the_sft_run_from_running_to_trained_to_evaluated(settings):
    jobs = Jobs(settings, poll=False)  # before the fake run: it would reap a "running" run with no live process
    folder = make_run(settings, "sft-gemma-cpu-demo", "sft", "running", step=3, max_steps=40)
    step = states(settings)["sft"]
    assert (step.status, step.progress, step.action) == (RUNNING, (3, 40), None)
    assert "step 3 / 40" in step.detail
    with pytest.raises(LectureError, match="going"):
        lecture.start_run("sft", settings, jobs)

    folder.update_status(state="finished", step=40)
    folder.adapter.mkdir()
    (folder.adapter / "adapter_config.json").write_text(json.dumps({"task_type": "CAUSAL_LM"}))
    step = states(settings)["sft"]
    assert (step.status, step.action, step.table) == (NEXT, "evaluate", None)
    assert lecture.evaluation_folder(settings).path == folder.path

    evaluation.save([eval_result("base", [True, False, False, False]), eval_result("base + sft", [True] * 4)],
                    folder.path)
    step = states(settings)["sft"]
    assert step.status == DONE and step.action == "evaluate"
    saved = evaluation.load_saved(folder.path)
    pd.testing.assert_frame_equal(step.table, evaluation.compare(*saved))  # whatever columns the saved one has
    assert "25.0 % → **base + sft** 100.0 % (+75.0 points, 4 examples)" in step.result


def test_step_2_evaluation_is_refused_before_the_run_is_trained(settings):
    with pytest.raises(LectureError, match="Train the SFT run first"):
        lecture.evaluation_folder(settings)


def test_a_failed_run_says_why_and_its_button_runs_it_again(settings):
    make_run(settings, "reward-gemma-cpu-demo", "reward", "failed", error="Out of memory\nmore")
    step = states(settings)["reward"]
    assert step.status == FAILED and step.action == "resume" and "Out of memory" in step.detail


def test_step_3_counts_the_votes_by_model_pair(settings):
    store = Store(settings.ratings_db)
    for r in sample_records():
        store.save(r)
    store.save(record(None, prompt="not voted"))
    step = states(settings)["rate"]
    assert step.status == DONE and "8 votes so far (6 saying one answer is better)" in step.detail
    assert step.table["votes"].sum() == 8 and set(step.table.columns) >= {"first model", "second model", "votes"}


def test_step_4_shows_held_out_accuracy_then_the_check_against_the_votes(settings):
    folder = make_run(settings, "reward-gemma-cpu-demo", "reward", "finished", adapter="SEQ_CLS",
                      metrics=[{"step": 10, "eval_accuracy": 0.6}, {"step": 20, "eval_accuracy": 0.85}])
    step = states(settings)["reward"]
    assert (step.status, step.action) == (NEXT, "check") and "**0.85**" in step.result
    assert "vote Left or Right better in step 3 first" in step.blocked  # no vote to check against yet
    with pytest.raises(LectureError, match="step 3 first"):
        lecture.check_reward(settings, reward_model.RewardModels(settings), Store(settings.ratings_db))

    Store(settings.ratings_db).save(record("a"))
    assert states(settings)["reward"].blocked == ""
    rows = pd.DataFrame({"id": ["1", "2"], "rater": ["ann"] * 2, "pair": ["x vs y"] * 2, "winner": ["a", "b"],
                         "reward_a": [2.0, 0.5], "reward_b": [1.0, 0.1], "agrees": [True, False],
                         "words_a": [30, 10], "words_b": [20, 5]})
    reward_model.save_check(folder.path, reward_model.Agreement(rows))
    step = states(settings)["reward"]
    assert step.status == DONE
    assert "Agrees with **50%** of 2 votes" in step.result and "Pearson r = +0.9" in step.result


def test_step_4_reads_the_held_out_accuracy_before_training_against_the_last():
    text = lecture.reward_accuracy_text([{"step": 0, "eval_accuracy": 0.48, "eval_loss": 0.7},
                                         {"step": 5, "loss": 0.6}, {"step": 20, "eval_accuracy": 0.9},
                                         {"step": 40, "eval_accuracy": 0.96}])
    assert text.endswith("**0.48** before training (0.50 = chance) → **0.96** after.")
    # a run from before the step-0 evaluation: the last figure alone; one stopped before its first step: the start's
    assert lecture.reward_accuracy_text([{"step": 20, "eval_accuracy": 0.9}]).endswith(": **0.90**.")
    assert lecture.reward_accuracy_text([{"step": 0, "eval_accuracy": 0.5}]).endswith(
        ": **0.50** before training (0.50 = chance); none measured after training yet.")
    assert lecture.reward_accuracy_text([{"step": 3, "loss": 0.6}]).startswith("No held-out accuracy logged")


def test_ppo_runs_once_both_runs_are_trained_and_shows_its_scores(settings):
    make_run(settings, "sft-gemma-cpu-demo", "sft", "stopped", adapter="CAUSAL_LM")
    make_run(settings, "reward-gemma-cpu-demo", "reward", "finished", adapter="SEQ_CLS")
    assert states(settings)["ppo"].blocked == ""
    make_run(settings, "ppo-gemma-cpu-demo", "ppo", "finished", adapter="CAUSAL_LM", max_steps=2,
             metrics=[{"step": 0, "eval_score": -0.5, "eval_kl": 0.0, "eval_prompts": 12},
                      {"step": 1, "score": 3.0, "kl": 0.0},
                      {"step": 2, "score": -1.0, "kl": 0.125, "eval_score": 0.25, "eval_kl": 1.5, "eval_prompts": 12}])
    step = states(settings)["ppo"]
    assert step.status == DONE and step.action is None
    # the held-out prompts before and after, not the training batches' scores (other prompts at each step)
    assert step.result.startswith("Reward model score on the 12 held-out prompts PPO never trained on (one sampled "
                                  "answer each): **-0.500** before PPO → **+0.250** at step 2; KL from the start "
                                  "1.50 nats per answer.")


def test_ppo_result_compares_the_first_and_last_held_out_checks_or_says_there_are_none():
    older = [{"step": 1, "score": 0.0, "kl": 0.0}, {"step": 6, "score": 0.5, "kl": 1.0, "eval_score": -0.25,
                                                     "eval_kl": 1.0}, {"step": 12, "eval_score": 0.5, "eval_kl": 2.0}]
    assert lecture.ppo_result(older).startswith("Reward model score on the held-out prompts PPO never trained on "
                                                "(one sampled answer each): **-0.250** at step 6 → **+0.500** at "
                                                "step 12")
    unchecked = [{"step": 1, "score": -0.5, "kl": 0.0}, {"step": 2, "score": 0.25, "kl": 0.125}]
    assert lecture.ppo_result(unchecked).startswith("Reward model score of step 2's answers +0.250; KL from the "
                                                    "start 0.125 nats. No held-out prompts")
    assert lecture.ppo_result([]) == "No scores logged."


def test_a_recipe_in_the_data_dir_replaces_the_shipped_one(settings):
    own = settings.data_dir / "recipes"
    own.mkdir()
    shipped = (lecture.RECIPES / "sft-gemma-cpu-demo.yaml").read_text()
    assert re.search(r"^max_steps: \d+$", shipped, re.M)
    (own / "sft-gemma-cpu-demo.yaml").write_text(re.sub(r"^max_steps: \d+$", "max_steps: 2", shipped, flags=re.M)
                                                 .replace("name: sft-gemma-cpu-demo", "name: my-sft")
                                                 + "data_dir: /somewhere/else\n")  # the data dir is the app's
    cfg = lecture.recipe_config("sft", settings)
    assert (cfg.name, cfg.max_steps, cfg.data_dir) == ("my-sft", 2, str(settings.data_dir))
    assert states(settings)["sft"].run == "my-sft"
    assert "my-sft" in states(settings)["ppo"].blocked


def test_the_fingerprint_changes_with_a_vote_a_run_and_its_evaluation(settings):
    first = lecture.fingerprint(settings)
    assert lecture.fingerprint(settings) == first  # nothing changed, nothing to redraw
    Store(settings.ratings_db).save(record("a"))
    after_vote = lecture.fingerprint(settings)
    assert after_vote != first
    folder = make_run(settings, "sft-gemma-cpu-demo", "sft", "finished", adapter="CAUSAL_LM")
    after_run = lecture.fingerprint(settings)
    assert after_run != after_vote
    evaluation.save([eval_result("base", [False]), eval_result("tuned", [True])], folder.path)
    assert lecture.fingerprint(settings) != after_run


def test_asking_both_models_stores_the_pair_step_1_shows(settings, tiny_base, tiny_chat):
    import threading
    from dataclasses import replace

    from playground.models.loading import ModelCache

    settings = replace(settings, model_a=str(tiny_base), model_b=str(tiny_chat))
    store = Store(settings.ratings_db)
    updates = list(lecture.ask_both(settings, ModelCache(settings), store, threading.Event()))
    comparison, left, right = updates[-1]
    [stored] = store.comparisons(voted_only=False)
    assert stored.id == comparison.record.id and stored.winner is None  # stored as Compare stores it, unvoted
    assert (stored.a.model, stored.b.model) == (str(tiny_base), str(tiny_chat))
    assert (stored.a.response, stored.b.response) == (left.text, right.text)  # exactly as written
    step = states(settings)["compare"]
    assert step.status == DONE and step.comparison.id == stored.id


def test_step_2_shows_every_column_the_evaluation_gives_and_survives_renamed_ones(settings, monkeypatch):
    """The held-out table is the evaluation's own (intervals appear once the evaluation adds them); a column the
    summary sentence doesn't know drops the sentence, not the step."""
    folder = make_run(settings, "sft-gemma-cpu-demo", "sft", "finished", adapter="CAUSAL_LM")
    evaluation.save([eval_result("base", [False, True]), eval_result("tuned", [True, True])], folder.path)
    plain = evaluation.compare
    monkeypatch.setattr(evaluation, "compare", lambda base, tuned: plain(base, tuned).assign(**{"tuned 95 % CI": "x"}))
    step = states(settings)["sft"]
    assert "tuned 95 % CI" in step.table.columns and "+50.0 points" in step.result
    monkeypatch.setattr(evaluation, "compare",
                        lambda base, tuned: plain(base, tuned).rename(columns={"change": "gain (points)"}))
    step = states(settings)["sft"]
    assert step.status == DONE and "gain (points)" in step.table.columns and step.result == ""
