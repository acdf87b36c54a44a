"""The Lecture tab's guided path: the lecture's five steps, each one's state derived from the data dir.

1. Language modelling ≠ assisting: a base and an instruction-tuned model answer the lecture's prompt (Compare).
2. Instruction tuning and unseen tasks: the SFT recipe's run, evaluated on held-out task families (Train, Runs).
3. Pairwise preferences: the votes so far (Rate, History).
4. A reward model of those preferences: the reward recipe's run, its held-out accuracy and length bias (Reward).
5. RL against the reward model, held near the start by KL: the PPO recipe's run from steps 2 and 4 (Runs).

Nothing here is kept in memory: :func:`lecture_state` reads the runs folder (the recipes' run names), the store and
the saved evaluations / reward checks each time, so the path survives an app restart and shows work done in the
other tabs too (a Compare answer to the lecture's prompt, a run started from the Train tab with the recipe's name).
Actions reuse the other tabs' code: :func:`start_run` queues a recipe through :class:`playground.runs.jobs.Jobs`,
:func:`ask_both` runs a comparison through :mod:`playground.ratings.comparison`, evaluation is
:func:`playground.runs.run_evaluation.evaluate_run`, the reward check :func:`playground.runs.reward_model.agreement`.

The runs are the shipped recipes ``assets/recipes/{sft,reward,ppo}-gemma-cpu-demo.yaml``; a file of the same name in
``DATA_DIR/recipes/`` replaces one (another base model, fewer steps), and PPO always starts from step 2's run and
maximises step 4's.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from playground.core.settings import Settings
from playground.data import evaluation
from playground.models.catalog import CatalogError, is_language_model_adapter, list_models, resolve_choice
from playground.models.generation import GenerationParams, StreamUpdate
from playground.models.loading import LoadOptions, ModelCache
from playground.ratings import comparison as cmp
from playground.ratings import history
from playground.ratings.selection import select
from playground.ratings.store import ComparisonRecord, Store
from playground.runs import reward_model
from playground.runs.jobs import JobError, Jobs
from playground.runs.run_folder import ACTIVE, RunFolder
from playground.train.checks import check_inputs
from playground.train.config import ConfigError, from_dict

RECIPES = Path(__file__).resolve().parents[1] / "assets" / "recipes"
RECIPE_NAMES = {"sft": "sft-gemma-cpu-demo", "reward": "reward-gemma-cpu-demo", "ppo": "ppo-gemma-cpu-demo"}
"""The shipped CPU recipes the lecture runs (file stem = the run's name as shipped)."""
LECTURE_TASK = "Explain to a child"
"""The example prompt (assets/datasets/example_prompts.jsonl) of step 1: the lecture's moon landing."""

NOT_STARTED, RUNNING, NEXT, DONE, FAILED = "not started", "running", "next", "done", "failed"
"""Step statuses; NEXT = its run is trained and the button does the rest (evaluate, check against the votes)."""


class LectureError(ValueError):
    """A step that can't be done now (a prerequisite missing, already running…); nothing was changed."""


@dataclass(frozen=True)
class StepState:
    """One step of the path as the data dir has it now."""

    number: int
    key: str
    title: str
    point: str
    """The step's point in two or three sentences."""
    tab: str
    """Id of the tab with the details."""
    status: str
    """NOT_STARTED, RUNNING, NEXT, DONE or FAILED."""
    detail: str
    """One line beside the status: progress, what is next, or why it failed."""
    action: str | None
    """What the button does now: compare, train, resume, evaluate, rate, check; None while running."""
    label: str
    """The button's label."""
    blocked: str = ""
    """Why the action can't be done yet (a missing prerequisite); "" when it can."""
    result: str = ""
    """The step's result in Markdown ("" before there is one)."""
    run: str | None = None
    """The run folder's name, for the run steps."""
    progress: tuple[int, int] | None = None
    """(step, max steps) of a running run."""
    table: pd.DataFrame | None = None
    """A result table: held-out accuracy per family (step 2), votes per model pair (step 3)."""
    comparison: ComparisonRecord | None = field(default=None, repr=False)
    """Step 1: the stored comparison shown."""


POINTS = {
    "compare": ("Language modelling ≠ assisting",
                "A base model was trained only to predict the next token, so given a request it *continues* the "
                "text. An instruction-tuned model was further trained on (instruction, answer) pairs, so it "
                "*answers*. Ask both the same thing and read the difference."),
    "sft": ("Instruction tuning and unseen tasks",
            "Fine-tune the base model on many instruction tasks (here a small LoRA adapter on the bundled "
            "instructions). The claim worth testing: it gets better at task *families it never saw*, so we score "
            "base and tuned on held-out families, by program."),
    "rate": ("Pairwise preferences",
             "For open-ended answers there is no single right output to imitate, and people judge two answers side "
             "by side more reliably than they score one. So collect votes: which of two answers is better?"),
    "reward": ("A reward model of the preferences",
               "Learn a number r(x, y) that explains the choices: −log σ(r(chosen) − r(rejected)) (Bradley–Terry). "
               "Check it before trusting it: does it rank held-out pairs as people did, and does it simply prefer "
               "long answers?"),
    "ppo": ("Maximise it with RL, held near the start by KL",
            "The policy (step 2's model) writes answers, the reward model (step 4's) scores them, and PPO raises "
            "the score while a KL penalty keeps the policy close to where it started. Watch for reward hacking: "
            "a score that climbs while the answers get worse (longer, repetitive, off the point) means the policy "
            "found what the reward model wrongly likes."),
}
TABS = {"compare": "compare", "sft": "runs", "rate": "rate", "reward": "reward", "ppo": "runs"}


# ---------------------------------------------------------------------------------------------- recipes


def recipe_path(stage: str, settings: Settings) -> Path:
    """The recipe a run step uses: ``DATA_DIR/recipes/<name>.yaml`` when there is one, else the shipped one."""
    own = settings.recipes_dir / f"{RECIPE_NAMES[stage]}.yaml"
    return own if own.is_file() else RECIPES / f"{RECIPE_NAMES[stage]}.yaml"


def recipe_config(stage: str, settings: Settings, **overrides: Any) -> Any:
    """The recipe as a validated config in this data dir (plus ``overrides``); LectureError when it can't be read."""
    path = recipe_path(stage, settings)
    try:
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError("config", "must hold a mapping of settings")
        return from_dict(stage, data | overrides | {"data_dir": str(settings.data_dir)})
    except (OSError, yaml.YAMLError) as error:
        raise LectureError(f"Can't read the recipe {path}: {error}") from error
    except ConfigError as error:
        raise LectureError(f"The recipe {path} is refused: {error.field}: {error.detail}") from error


def run_names(settings: Settings) -> dict[str, str]:
    """The run name of each run step (the recipe's ``name``; the file's name if the recipe can't be read)."""
    names = {}
    for stage in RECIPE_NAMES:
        try:
            names[stage] = recipe_config(stage, settings).name
        except LectureError:
            names[stage] = RECIPE_NAMES[stage]
    return names


def _trained(folder: RunFolder) -> bool:
    """A run whose adapter is saved and that is no longer going (finished, or stopped with its adapter)."""
    return folder.status().get("state") in ("finished", "stopped") and \
        (folder.adapter / "adapter_config.json").is_file()


# ---------------------------------------------------------------------------------------------- state


def lecture_prompt() -> str:
    """Step 1's prompt: the moon landing, for a six-year-old, from the example prompts."""
    return next(e["prompt"] for e in cmp.load_examples() if e["task"] == LECTURE_TASK)


def model_source(choice: str) -> str | None:
    """The source a stored comparison records for a model picked as ``choice`` (None if it names no model)."""
    try:
        return resolve_choice(choice, []).source
    except CatalogError:
        return None


def lecture_comparison(settings: Settings, store: Store) -> ComparisonRecord | None:
    """The newest stored comparison of the default models (no adapters) on the lecture's prompt, from this tab or
    Compare, either way round."""
    prompt = lecture_prompt()
    wanted = {model_source(settings.model_a), model_source(settings.model_b)}
    found = [r for r in store.comparisons(voted_only=False)
             if r.judge_of is None and r.repeat_of is None and len(r.messages) == 1 and r.prompt.strip() == prompt and r.a.adapter is None and r.b.adapter is None
             and {r.a.model, r.b.model} == wanted]
    return max(found, key=lambda r: r.created_at) if found else None


def _compare_step(settings: Settings, store: Store) -> StepState:
    record = lecture_comparison(settings, store)
    title, point = POINTS["compare"]
    if record is None:
        return StepState(1, "compare", title, point, TABS["compare"], NOT_STARTED,
                         f"{settings.model_a} and {settings.model_b} have not answered the lecture's prompt yet.",
                         "compare", "Ask both models")
    return StepState(1, "compare", title, point, TABS["compare"], DONE,
                     f"Asked {record.created_at[:16].replace('T', ' ')} UTC.", "compare", "Ask again",
                     result=f"Prompt: *{record.prompt}*", comparison=record)


def _run_step(number: int, key: str, folder: RunFolder, train_label: str) -> StepState | None:
    """The state of a run step while its run is missing, going or failed; None once it is trained."""
    title, point = POINTS[key]
    if not folder.config.is_file():
        return StepState(number, key, title, point, TABS[key], NOT_STARTED,
                         f"No run {folder.name} yet.", "train", train_label, run=folder.name)
    status = folder.status()
    state = status.get("state", "unknown")
    step, total = int(status.get("step") or 0), int(status.get("max_steps") or 0)
    if state in ACTIVE:
        return StepState(number, key, title, point, TABS[key], RUNNING,
                         f"{folder.name}: {state}" + (f", step {step} / {total}" if total else ""), None, "Running…",
                         run=folder.name, progress=(step, total))
    if _trained(folder):
        return None
    error = (status.get("error") or "").strip().splitlines()
    return StepState(number, key, title, point, TABS[key], FAILED,
                     f"{folder.name} {state}" + (f": {error[0]}" if error else "") + " — see Runs for its log.",
                     "resume", "Run it again", run=folder.name)


def _sft_step(settings: Settings, name: str) -> StepState:
    folder = RunFolder(settings.runs_dir / name)
    going = _run_step(2, "sft", folder, "Train (SFT recipe)")
    if going is not None:
        return going
    title, point = POINTS["sft"]
    try:
        saved = evaluation.load_saved(folder.path)
    except ValueError as error:
        saved, damaged = None, str(error)
    else:
        damaged = ""
    if not saved or len(saved) != 2:
        return StepState(2, "sft", title, point, TABS["sft"], NEXT,
                         damaged or f"{name} is trained: evaluate base vs tuned on the held-out families next.",
                         "evaluate", "Evaluate on held-out tasks", run=name)
    table = evaluation.compare(*saved)
    return StepState(2, "sft", title, point, TABS["sft"], DONE, f"{name} trained and evaluated.", "evaluate",
                     "Evaluate again", run=name, table=table, result=_overall(table, saved))


def _overall(table: pd.DataFrame, saved: list[evaluation.EvalResult]) -> str:
    """The "all tasks" row in a sentence; the table shows every column the saved evaluation has (intervals too,
    when the evaluation adds them), so a column this sentence doesn't know only drops the sentence."""
    rows = table[table["task"] == evaluation.ALL_TASKS] if "task" in table else table.iloc[:0]
    if rows.empty or not {"base %", "tuned %", "change", "n"} <= set(rows.columns):
        return ""
    overall = rows.iloc[0]
    return (f"Held-out accuracy, all families: **{saved[0].model}** {overall['base %']:.1f} % → "
            f"**{saved[1].model}** {overall['tuned %']:.1f} % ({overall['change']:+.1f} points, "
            f"{int(overall['n'])} examples).")


def _rate_step(store: Store) -> StepState:
    records = select(store.comparisons())  # people's votes: this step is about your own preferences
    title, point = POINTS["rate"]
    if not records:
        return StepState(3, "rate", title, point, TABS["rate"], NOT_STARTED, "No votes yet.", "rate",
                         "Rate pairs in the Rate tab")
    ordered = sum(r.winner in ("a", "b") for r in records)
    return StepState(3, "rate", title, point, TABS["rate"], DONE,
                     f"{len(records)} votes so far ({ordered} saying one answer is better).", "rate", "Rate more",
                     result=f"**{len(records)}** votes, by model pair:", table=history.pair_counts(records))


def _reward_step(settings: Settings, store: Store, name: str) -> StepState:
    folder = RunFolder(settings.runs_dir / name)
    going = _run_step(4, "reward", folder, "Train (reward recipe)")
    if going is not None:
        return going
    title, point = POINTS["reward"]
    lines = [reward_accuracy_text(folder.metrics())]
    checked = reward_model.load_check(folder.path)
    ordered = any(r.winner in ("a", "b") for r in select(store.comparisons()))
    blocked = "" if ordered else ("No vote says one answer is better yet: vote Left or Right better in step 3 first, "
                                  "then check the reward model against your votes.")
    if checked is None:
        return StepState(4, "reward", title, point, TABS["reward"], NEXT,
                         f"{name} is trained: check it against your votes (agreement, length bias) next.", "check",
                         "Check it against your votes", blocked=blocked, run=name, result=lines[0])
    agreement = checked.get("agreement")
    lines.append(f"Agrees with **{agreement:.0%}** of {checked.get('votes', 0)} votes (50 % = chance)."
                 if agreement is not None else "No vote to agree with.")
    r, p = checked.get("length_r"), checked.get("length_p")
    lines.append(reward_model.length_bias_text(r, p if p is not None else float("nan")) if r is not None else
                 "Length bias: too few scored answers of different lengths to tell.")
    return StepState(4, "reward", title, point, TABS["reward"], DONE, f"{name} trained and checked.", "check",
                     "Check again", blocked=blocked, run=name, result="\n\n".join(lines))


def reward_accuracy_text(metrics: list[dict[str, Any]]) -> str:
    """Step 4's first result line: the reward model's held-out pair accuracy after training, and before it (the
    untrained model's, at step 0) when the run logged one — about chance, which is the point of the step."""
    held = [(m["step"], m["eval_accuracy"]) for m in metrics if m.get("eval_accuracy") is not None]
    if not held:
        return "No held-out accuracy logged (the recipe holds out no pairs)."
    text = "Held-out accuracy (r_chosen > r_rejected on pairs it never trained on): "
    before = f"**{held[0][1]:.2f}** before training (0.50 = chance)" if held[0][0] == 0 else ""
    if before and len(held) == 1:  # stopped before its first step: nothing trained to measure yet
        return text + before + "; none measured after training yet."
    return text + (f"{before} → **{held[-1][1]:.2f}** after." if before else f"**{held[-1][1]:.2f}**.")


def _ppo_step(settings: Settings, names: dict[str, str]) -> StepState:
    folder = RunFolder(settings.runs_dir / names["ppo"])
    going = _run_step(5, "ppo", folder, "Train (PPO recipe)")
    missing = [f"step {n}'s {stage.upper() if stage == 'sft' else 'reward'} run {names[stage]}"
               for n, stage in ((2, "sft"), (4, "reward")) if not _trained(RunFolder(settings.runs_dir / names[stage]))]
    blocked = (f"PPO needs {' and '.join(missing)} trained first (finished, or stopped with its adapter): it starts "
               f"from the SFT model and maximises the reward model.") if missing else ""
    if going is not None:
        return replace(going, blocked=blocked) if going.status == NOT_STARTED else going
    title, point = POINTS["ppo"]
    return StepState(5, "ppo", title, point, TABS["ppo"], DONE, f"{names['ppo']} trained.", None, "Done",
                     run=names["ppo"], result=ppo_result(folder.metrics()))


def ppo_result(metrics: list[dict[str, Any]]) -> str:
    """Step 5's result: the reward model's score on the held-out prompts before PPO (or at the first check) and at
    the last check — the same prompts, so the two are comparable — with the KL from the start. A training step's
    score is not compared across steps: each step answers other prompts, and which prompt was asked moves the
    score more than the policy does."""
    held = [m for m in metrics if m.get("eval_score") is not None]
    if len(held) >= 2:
        first, last = held[0], held[-1]
        start = "before PPO" if first["step"] == 0 else f"at step {first['step']}"
        count = f"{last['eval_prompts']} " if last.get("eval_prompts") else ""
        return (f"Reward model score on the {count}held-out prompts PPO never trained on (one sampled answer each): "
                f"**{first['eval_score']:+.3f}** {start} → **{last['eval_score']:+.3f}** at step {last['step']}; KL "
                f"from the start {last['eval_kl']:.2f} nats per answer. One answer per prompt is a rough measure, "
                f"a few tenths either way can be chance: read the answers too.")
    scored = [m for m in metrics if m.get("score") is not None]
    if not scored:
        return "No scores logged."
    last = scored[-1]
    return (f"Reward model score of step {last['step']}'s answers {last['score']:+.3f}; KL from the start "
            f"{last.get('kl', float('nan')):.3f} nats. No held-out prompts were checked before and after (the "
            f"recipe's eval_fraction), and each step answers other prompts, so its scores don't say whether PPO "
            f"raised the score.")


def lecture_state(settings: Settings, store: Store | None = None) -> list[StepState]:
    """The five steps as the data dir has them now (runs folder, store, saved evaluations and checks)."""
    store = store or Store(settings.ratings_db)
    names = run_names(settings)
    return [_compare_step(settings, store), _sft_step(settings, names["sft"]), _rate_step(store),
            _reward_step(settings, store, names["reward"]), _ppo_step(settings, names)]


def fingerprint(settings: Settings) -> tuple:
    """When each file the state is derived from last changed: the votes database, the recipes and every file of the
    lecture's runs that the state reads. Cheap (no parsing), so a page can poll it and derive the state again only
    when it changes."""
    names = run_names(settings)
    paths = [settings.ratings_db, settings.ratings_db.with_name(settings.ratings_db.name + "-wal"),
             *(settings.recipes_dir / f"{name}.yaml" for name in RECIPE_NAMES.values())]
    for name in names.values():
        folder = RunFolder(settings.runs_dir / name)
        paths += [folder.config, folder.status_file, folder.metrics_file, folder.samples_file,
                  folder.path / evaluation.EVAL_FILE, folder.path / reward_model.CHECK_FILE]
    stamps = []
    for path in paths:
        try:
            stamps.append(path.stat().st_mtime_ns)
        except OSError:
            stamps.append(None)
    return tuple(names.values()), tuple(stamps)


def step(settings: Settings, key: str, store: Store | None = None) -> StepState:
    """One step's state by key (compare, sft, rate, reward, ppo)."""
    return next(s for s in lecture_state(settings, store) if s.key == key)


# ---------------------------------------------------------------------------------------------- actions


def start_run(stage: str, settings: Settings, jobs: Jobs, store: Store | None = None) -> str:
    """Queue the recipe's run of a run step (sft, reward, ppo), or queue a failed one again; returns what happened.

    Refuses with :class:`LectureError`, changing nothing, when a prerequisite is missing (PPO before the SFT and
    reward runs are trained), when the run is going or already trained, or when the recipe's inputs are unusable.
    """
    state = step(settings, stage, store)
    if state.action == "resume":
        try:
            jobs.resume(state.run)
        except JobError as error:
            raise LectureError(str(error)) from error
        return f"{state.run} queued again."
    if state.action != "train":
        raise LectureError(f"{state.run} is {'going' if state.status == RUNNING else 'already trained'}: "
                           f"nothing to start.")
    if state.blocked:
        raise LectureError(state.blocked)
    names = run_names(settings)
    overrides = {"sft_run": names["sft"], "reward_run": names["reward"]} if stage == "ppo" else {}
    cfg = recipe_config(stage, settings, **overrides)
    try:
        check_inputs(cfg, settings)
        jobs.create(stage, cfg)
    except ConfigError as error:
        raise LectureError(f"{cfg.name} can't start: {error.field}: {error.detail}") from error
    except JobError as error:
        raise LectureError(str(error)) from error
    position = next((r.queue_position for r in jobs.runs() if r.name == cfg.name), None)
    return f"{cfg.name} queued (#{position}: another run is using the machine)." if position else f"{cfg.name} started."


def ask_both(settings: Settings, cache: ModelCache, store: Store,
             stop: threading.Event) -> Iterator[tuple[cmp.Comparison, StreamUpdate, StreamUpdate]]:
    """Step 1: the default models (Compare's, base left) answer the lecture's prompt side by side, as Compare does
    with its default settings; the finished pair is stored as Compare stores it (unvoted), yielding as it streams."""
    entries = list_models(settings)
    comparison = cmp.start(settings.model_a, settings.model_b, blind=False)
    params, formats = GenerationParams(), ("auto", "auto")
    left = right = None
    for left, right in cmp.run_turn(comparison, lecture_prompt(), cache, entries, formats, "", params, LoadOptions(),
                                    stop):
        yield comparison, left, right
    if left is not None and cmp.finish_turn(comparison, left, right, entries, formats, "", params):
        comparison.record = store.save(comparison.record)
        yield comparison, left, right


def check_reward(settings: Settings, models: reward_model.RewardModels, store: Store) -> dict[str, Any]:
    """Step 4's check: the Reward tab's agreement with the votes and length correlation, saved with the run."""
    state = step(settings, "reward", store)
    if state.action != "check":
        raise LectureError(f"Train the reward model first ({state.run} is {state.status}).")
    if state.blocked:
        raise LectureError(state.blocked)
    records = [r for r in select(store.comparisons()) if r.winner in ("a", "b")]
    checked = reward_model.agreement(models.get(state.run), records)
    return reward_model.save_check(settings.runs_dir / state.run, checked)


def evaluation_folder(settings: Settings, store: Store | None = None) -> RunFolder:
    """Step 2's run folder once it can be evaluated (trained, a language-model adapter); LectureError before."""
    state = step(settings, "sft", store)
    if state.action != "evaluate":
        raise LectureError(f"Train the SFT run first ({state.run} is {state.status}).")
    folder = RunFolder(settings.runs_dir / state.run)
    if not is_language_model_adapter(folder.adapter):
        raise LectureError(f"{state.run} is not an SFT run: its adapter doesn't write answers.")
    return folder
