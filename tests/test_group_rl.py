"""GRPO and RLOO end to end on tiny local models: the checks' reward is the held-out checks' verdict on each answer,
a reward run's reward is that reward model's score, Stop + Resume continue the step count, bad settings are refused
by field, and each run's adapter lands in Compare."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from playground.core.settings import Settings
from playground.data import evaluation
from playground.models.catalog import list_models
from playground.runs.jobs import Jobs
from playground.runs.reward_model import RewardModel, find_run
from playground.runs.run_folder import RunFolder
from playground.train import group_rl, grpo, reward
from playground.train.checks import check_inputs
from playground.train.config import ConfigError, GRPOConfig, RewardConfig, RLOOConfig
from playground.ui.runs_tab import CHARTS, answers
from tests.app_process import kill_live_runs
from tests.test_reward_dpo import toy_pairs

EXAMPLES = [
    {"id": "t1", "task": "capital", "instruction": "What is the capital of France?", "input": "", "answer": "Paris",
     "check": "exact"},
    {"id": "t2", "task": "capital", "instruction": "What is the capital of Italy?", "input": "", "answer": "Rome",
     "check": "exact"},
    {"id": "t3", "task": "count", "instruction": "How many legs has a dog?", "input": "", "answer": "4",
     "check": "contains"},
    {"id": "t4", "task": "count", "instruction": "How many wheels has a bicycle?", "input": "", "answer": "2",
     "check": "contains"},
]
PROMPTS = ["Tell me about the sea.", "Name a robot.", "Describe the moon.", "Say something kind.",
           "Write a word.", "Count to three.", "Tell a short story.", "Describe a fox."]


def tasks_file(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in EXAMPLES))
    return path


def small(base, data_dir, **overrides) -> dict:
    values = dict(base_model=str(base), quantization="none", lora_r=8, lora_alpha=16, batch_size=8,
                  answers_per_prompt=4, response_length=8, max_length=128, max_steps=2, save_steps=10,
                  eval_fraction=0.0, samples_per_step=8, learning_rate=1e-3, data_dir=str(data_dir))
    return values | overrides


def by_step(samples) -> dict[int, list[dict]]:
    steps = defaultdict(list)
    for sample in samples:
        steps[sample["step"]].append(sample)
    return steps


# ---------------------------------------------------------------------------------------------- the reward


def test_the_checks_reward_is_one_when_the_check_passes_and_zero_otherwise(tmp_path):
    examples = {e["id"]: e for e in EXAMPLES}
    rows = [examples[i] for i in ("t1", "t1", "t3", "t3", "t4")]
    answers = ["Paris.", "Lyon", "A dog has 4 legs.", "4 or 5", "Two wheels, I think 2"]
    # by hand: exact match ignoring the full stop; wrong city; "4" as a whole number in one short sentence; a list
    # of candidates; "2" in a sentence of five words
    assert group_rl.check_scores(rows, answers) == [1.0, 0.0, 1.0, 0.0, 1.0]

    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()
    reward_function = group_rl.RewardFunction(group_rl.check_scores, folder, samples_per_step=2, eos_token_id=2)
    columns = {name: [row[name] for row in rows] for name in group_rl.EXAMPLE_FIELDS}
    columns |= {"messages": [[{"role": "user", "content": row["instruction"]}] for row in rows],
                "system": [""] * len(rows)}

    class State:
        global_step = 6

    scores = reward_function(prompts=["p"] * 5, completions=answers, completion_ids=[[5, 2], [5], [7], [7], [7]],
                             trainer_state=State(), log_extra=None, log_metric=None, **columns)
    assert scores == [1.0, 0.0, 1.0, 0.0, 1.0]
    assert folder.samples() == [  # the first two answers of step 7, as the Runs tab shows them
        {"step": 7, "prompt": "What is the capital of France?", "answer": "Paris.", "score": 1.0, "tokens": 2,
         "eos": True},
        {"step": 7, "prompt": "What is the capital of France?", "answer": "Lyon", "score": 0.0, "tokens": 1,
         "eos": False}]


def test_bad_settings_are_refused_by_field(tiny_base, tiny_chat, settings, tmp_path):
    for field, overrides, message in [
        ("answers_per_prompt", {"answers_per_prompt": 1}, "at least 2"),
        ("answers_per_prompt", {"answers_per_prompt": 3}, r"must divide batch_size × gradient_accumulation \(8\)"),
        ("max_length", {"max_length": 40, "response_length": 48}, "room for a prompt"),
        ("samples_per_step", {"samples_per_step": 9}, r"the answers a step samples \(8\)"),
        ("reward_source", {"reward_source": "robots"}, "must be reward_run, checks or judge"),
        ("kl_coef", {"kl_coef": -1.0}, r"\[0, 10\]"),
        ("iterations", {"iterations": 0}, "between 1 and 16"),
    ]:
        with pytest.raises(ConfigError, match=message) as caught:
            GRPOConfig(**overrides)
        assert caught.value.field == field
    with pytest.raises(ConfigError, match="group, batch or none"):
        GRPOConfig(scale_rewards="all")

    def refused(field, config_class=GRPOConfig, **overrides):
        cfg = config_class(**(dict(base_model=str(tiny_base), data_dir=str(settings.data_dir)) | overrides))
        with pytest.raises(ConfigError) as caught:
            check_inputs(cfg, settings)
        assert caught.value.field == field, caught.value
        return str(caught.value)

    assert "choose a reward model" in refused("reward_run")
    assert "No reward model 'nope'" in refused("reward_run", config_class=RLOOConfig, reward_run="nope")
    assert "no held-out task file" in refused("datasets", reward_source="checks", datasets=["prompts"])
    tasks = str(tasks_file(tmp_path))
    # 4 examples, 2 prompts a step: fine; a quarter held out leaves 3 (still fine); with 4 answers a step of 16
    # (4 prompts), 3 are too few
    check_inputs(GRPOConfig(**small(tiny_base, settings.data_dir, reward_source="checks", datasets=[tasks])),
                 settings)
    assert "3 prompts to train on once 1 are held out" in refused(
        "datasets", reward_source="checks", datasets=[tasks], batch_size=16, eval_fraction=0.25)
    # a reward model trained on another base is refused, as PPO refuses it
    rm = RewardConfig(name="rm-chat", base_model=str(tiny_chat), datasets=[str(_pairs(tmp_path))], max_steps=1,
                      batch_size=4, gradient_accumulation=1, eval_fraction=0.0, lora_r=4, lora_alpha=8,
                      data_dir=str(settings.data_dir))
    _train_reward(rm, settings)
    assert "was trained on" in refused("reward_run", reward_run="rm-chat")


def _pairs(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in toy_pairs(16)))
    return path


def _train_reward(cfg: RewardConfig, settings: Settings) -> None:
    folder = RunFolder(settings.runs_dir / cfg.name)
    folder.path.mkdir(parents=True)
    folder.config.write_text(cfg.to_yaml())
    assert reward.main(cfg, folder) == "finished"


# ---------------------------------------------------------------------------------------------- runs


@pytest.fixture
def jobs(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", memory_budget_gb=1)
    settings.ensure_dirs()
    jobs = Jobs(settings, poll=False)
    yield jobs
    kill_live_runs(jobs)  # never leave a run process behind


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_grpo_run_is_rewarded_by_the_checks_and_joins_compare(jobs, tiny_base, tmp_path):
    settings = jobs.settings
    tasks = tasks_file(tmp_path)
    folder = jobs.create("grpo", GRPOConfig(**small(tiny_base, settings.data_dir, name="grpo-checks",
                                                    reward_source="checks", datasets=[str(tasks)])))
    assert jobs.wait("grpo-checks", 500) == "finished", folder.status().get("error")
    train_rows = [m for m in folder.metrics() if "rewards/score/mean" in m]
    assert [m["step"] for m in train_rows] == [1, 2]
    assert {"kl", "entropy", "completions/mean_length", "reward_std", "frac_reward_zero_std"} <= set(train_rows[0])
    examples = {e["instruction"]: evaluation.HeldoutExample(**e) for e in EXAMPLES}
    steps = by_step(folder.samples())
    assert sorted(steps) == [1, 2]
    for step, samples in steps.items():
        assert len(samples) == 8  # every answer of the step: 4 to each of 2 prompts
        assert [len({s["prompt"] for s in samples[i:i + 4]}) for i in (0, 4)] == [1, 1]  # groups in a row
        # each reward, recomputed here from the answer and its task's check
        expected = [1.0 if evaluation.is_correct(s["answer"], examples[s["prompt"]]) else 0.0 for s in samples]
        assert [s["score"] for s in samples] == expected
        logged = next(m for m in train_rows if m["step"] == step)["rewards/score/mean"]
        assert logged == pytest.approx(sum(expected) / len(expected))  # what TRL optimised is what the checks said
    entry = next(e for e in list_models(settings) if e.note == "trained here")
    assert entry.label == "tiny-base + grpo-checks" and entry.spec.trained_format == "instruction"
    info = json.loads((folder.adapter / "playground.json").read_text())
    assert info["stage"] == "grpo" and info["reward_source"] == "checks"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_an_rloo_run_maximises_the_reward_run_score_on_the_same_base(jobs, tiny_base, tmp_path):
    settings = jobs.settings
    _train_reward(RewardConfig(name="rm", base_model=str(tiny_base), datasets=[str(_pairs(tmp_path))], max_steps=2,
                               batch_size=4, gradient_accumulation=1, eval_fraction=0.0, lora_r=4, lora_alpha=8,
                               data_dir=str(settings.data_dir)), settings)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    folder = jobs.create("rloo", RLOOConfig(**small(tiny_base, settings.data_dir, name="rloo-rm", reward_run="rm",
                                                    datasets=[str(prompts)], eval_fraction=0.25)))
    assert jobs.wait("rloo-rm", 800) == "finished", folder.status().get("error")
    assert "a second copy of the base" in folder.log.read_text()
    metrics = folder.metrics()
    assert [m["step"] for m in metrics if "rewards/score/mean" in m] == [1, 2]
    assert any("eval_rewards/score/mean" in m for m in metrics)  # the held-out prompts were answered and scored
    samples = folder.samples()
    assert len(samples) == 16
    # each logged reward is the reward model's own score of that (prompt, answer), as the Reward tab scores it
    model = RewardModel(find_run("rm", settings), settings)
    again = model.score([([{"role": "user", "content": s["prompt"]}], "", s["answer"]) for s in samples])
    assert [s["score"] for s in samples] == pytest.approx(again, abs=1e-3)
    for step, rows in by_step(samples).items():
        logged = next(m for m in metrics if m["step"] == step and "rewards/score/mean" in m)["rewards/score/mean"]
        assert logged == pytest.approx(sum(s["score"] for s in rows) / len(rows), abs=1e-3)
    assert any(e.label == "tiny-base + rloo-rm" for e in list_models(settings))
    logged = {key for m in metrics for key in m}
    for title, _, keys in CHARTS["rloo"]:  # every chart the Runs tab draws has its numbers
        assert set(keys) <= logged, (title, set(keys) - logged)
    shown = answers(jobs, "rloo-rm", None)  # the answer viewer opens for the run, at its latest step
    assert shown[0]["visible"] is True and list(shown[2]["step"]) == [2] * 8


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_stop_then_resume_continues_the_step_count(tiny_base, tmp_path):
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    cfg = GRPOConfig(**small(tiny_base, tmp_path / "data", name="grpo-stop", reward_source="checks",
                             datasets=[str(tasks_file(tmp_path))], max_steps=3, samples_per_step=2))
    run.stop_file.write_text("")  # Stop pressed while the run starts: it stops after its first step
    assert grpo.main(cfg, run) == "stopped"
    assert run.last_checkpoint().name == "checkpoint-1" and (run.adapter / "adapter_config.json").is_file()
    run.stop_file.unlink()
    # As if killed after logging step 2 but before its checkpoint: the resumed run logs step 2 again, once.
    run.append_metrics({"step": 2, "rewards/score/mean": 99.0})
    with run.samples_file.open("a") as out:
        out.write(json.dumps({"step": 2, "prompt": "lost", "answer": "lost", "score": 99.0}) + "\n")
    assert grpo.main(cfg, run, resume=True) == "finished"
    assert [m["step"] for m in run.metrics() if "rewards/score/mean" in m] == [1, 2, 3]
    assert all(s["prompt"] != "lost" for s in run.samples())
    assert [s["step"] for s in run.samples()] == [1, 1, 2, 2, 3, 3]


def test_the_form_offers_prompt_sets_and_the_checks_tasks_and_the_cli_lists_the_settings(settings):
    from playground.train.__main__ import settings_epilog
    from playground.ui.train_tab import dataset_choices, list_inputs

    for stage in ("grpo", "rloo"):
        assert {"prompts", "instructions", "heldout"} <= set(dataset_choices(stage, settings))
        assert list_inputs(stage) == ["base_model", "datasets", "sft_run", "reward_run"]
        listing = " ".join(settings_epilog([stage, "--help"]).split())
        assert "reward_source ('reward_run'): What scores an answer" in listing and "answers_per_prompt (4)" in listing
    assert "preferences" in dataset_choices("kto", settings)
    assert group_rl.load_tasks(GRPOConfig(reward_source="checks", datasets=["heldout"], max_examples=5), settings)[
        0].example == evaluation.load_heldout()[0]  # the bundled held-out examples, with their expected answers
