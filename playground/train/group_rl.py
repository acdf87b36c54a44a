"""What GRPO and RLOO share: the prompts a run answers, the reward that scores each answer, and the trainer built
from them. Critic-free RL: each step samples a group of answers to every prompt and learns from how each answer
scored against its own group, so — unlike PPO — there is no value model to train.

The reward has three sources (``reward_source``):

* ``reward_run`` — a reward run of this project trained on the same base model: the prompts are PPO's prompt sets
  (:mod:`playground.data.prompt_sets`), and each answer is scored exactly as the Reward tab scores it
  (:class:`playground.runs.reward_model.RewardModel`, through :func:`playground.data.preference_pairs.encode`).
* ``checks`` — verifiable rewards, no reward model: the prompts are held-out task examples
  (:mod:`playground.data.evaluation`), and an answer earns 1 when its task's check passes on it (exact, or
  contains), 0 otherwise.
* ``judge`` — RL from AI feedback: an AI judge (:mod:`playground.ratings.judge`) compares each answer with the
  starting policy's answer to its prompt, both orders, and the reward is 1 / ½ / 0 as it wins, ties or loses
  (:func:`judge_scorer`): the mean reward is the win rate against the start.

Memory: the policy is a LoRA on the one base model, and its reference is the same network with the adapters off (a
fresh LoRA) or TRL's frozen ``ref`` copy of the SFT adapter — TRL switches them itself. The reward model is a
**second copy of the base** in memory: TRL hands a reward function only the answers' text, between forward passes
whose adapters it manages, so a reward adapter can't be switched on the shared network as PPO's own loop does
(:mod:`playground.train.ppo_roles`); it is loaded apart, as the run trained it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from playground.core.distributed import is_main_process
from playground.core.settings import Settings
from playground.data import evaluation, prompt_sets
from playground.data.evaluation import HeldoutExample
from playground.data.preference_pairs import encode_prompt
from playground.data.prompt_sets import Prompt
from playground.models.prompting import render
from playground.runs.reward_model import RewardRun
from playground.runs.run_folder import RunFolder
from playground.train import common, trl_stage
from playground.train.callbacks import RunCallback
from playground.train.common import settings_for
from playground.train.config import ConfigError, _GroupConfig
from playground.train.dpo import build_model

if TYPE_CHECKING:
    from playground.ratings.judge import Judge

HELDOUT = "heldout"
"""The name of the bundled held-out task examples, the checks' default prompts."""
EXAMPLE_FIELDS = ("id", "task", "instruction", "input", "answer", "check")
"""A held-out example's fields, carried as dataset columns so that the reward function gets them with each answer."""

Scorer = Callable[[list[dict[str, Any]], list[str]], list[float]]
"""score(each answer's dataset row, the answers' texts) → one reward per answer."""


@dataclass(frozen=True)
class Task:
    """One prompt a run answers; with the checks, the held-out example whose answer is checked."""

    prompt: Prompt
    example: HeldoutExample | None = None


# ---------------------------------------------------------------------------------------------- prompts


def _examples(name: str) -> list[HeldoutExample]:
    """The held-out examples of ``name`` ("heldout" or a file in that format), or a ConfigError on datasets."""
    path = evaluation.HELDOUT if name == HELDOUT else Path(name).expanduser()
    if name != HELDOUT and not path.is_file():
        raise ConfigError("datasets", f"{name!r} is no held-out task file: with reward_source checks the prompts "
                                      f"come with their expected answers, from {HELDOUT!r} (the bundled task "
                                      f"families) or a JSONL file in that format.")
    try:
        return evaluation.load_heldout(path)
    except evaluation.HeldoutError as error:
        raise ConfigError("datasets", str(error)) from error


def load_tasks(cfg: _GroupConfig, settings: Settings) -> list[Task]:
    """The config's prompts (at most ``max_examples``): PPO's prompt sets for a reward run or a judge, held-out task
    examples for the checks. Raises :class:`ConfigError` on ``datasets`` saying what is wrong."""
    if cfg.reward_source == "checks":
        tasks = [Task(Prompt([{"role": "user", "content": e.prompt}]), e) for name in cfg.datasets
                 for e in _examples(name)]
    else:
        try:
            tasks = [Task(p) for p in prompt_sets.load_all(cfg.datasets, settings)]
        except prompt_sets.PromptSetError as error:
            raise ConfigError("datasets", str(error)) from error
    return tasks[: cfg.max_examples] if cfg.max_examples else tasks


_Item = TypeVar("_Item")


def split(items: list[_Item], eval_fraction: float, seed: int) -> tuple[list[_Item], list[_Item]]:
    """A seeded held-out split (none when ``eval_fraction`` is 0), as PPO splits its prompts: the same config gives
    the same split, so a resumed run trains on the same prompts."""
    held = int(len(items) * eval_fraction)
    if held == 0:
        return items, []
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    return [items[i] for i in order[held:]], [items[i] for i in order[:held]]


def prompts_per_step(cfg: _GroupConfig) -> int:
    """The prompts a step answers: the answers it samples over the answers per prompt."""
    return cfg.batch_size * cfg.gradient_accumulation // cfg.answers_per_prompt


def check_tasks(cfg: _GroupConfig, settings: Settings) -> list[Task]:
    """The config's prompts, refused (:class:`ConfigError` on ``datasets``) when fewer are left to train on than a
    step answers."""
    tasks = load_tasks(cfg, settings)
    training = len(tasks) - int(len(tasks) * cfg.eval_fraction)  # what split leaves to train on
    if training < prompts_per_step(cfg):
        held = f" once {len(tasks) - training} are held out (eval_fraction)" if training < len(tasks) else ""
        raise ConfigError("datasets", f"{training} prompts to train on{held}, fewer than the {prompts_per_step(cfg)} "
                                      f"a step answers (batch_size × gradient_accumulation / answers_per_prompt).")
    return tasks


def prompt_rows(tasks: Sequence[Task], tokenizer: Any, cfg: _GroupConfig) -> tuple[list[dict[str, Any]], int]:
    """The tasks as TRL prompt rows — the prompt rendered in the ### Instruction frame as text, or as messages that
    TRL renders with the chat template (as Compare prompts the tuned model) — with the conversation, system prompt
    and held-out example as columns for the reward function. Prompts longer than max_length − response_length
    tokens are left out; returns (rows, how many were left out)."""
    room = cfg.max_length - cfg.response_length
    rows, too_long = [], 0
    for task in tasks:
        messages, system = task.prompt.messages, task.prompt.system
        if len(encode_prompt(tokenizer, messages, system, cfg.prompt_format)) > room:
            too_long += 1
            continue
        if cfg.prompt_format == "chat":
            prompt: Any = ([{"role": "system", "content": system}] if system else []) + [dict(m) for m in messages]
        else:
            prompt = render(messages, "instruction", "base", tokenizer, system=system).text
        example = {name: getattr(task.example, name) for name in EXAMPLE_FIELDS} if task.example else {}
        rows.append({"prompt": prompt, "messages": [dict(m) for m in messages], "system": system} | example)
    return rows, too_long


# ---------------------------------------------------------------------------------------------- rewards


def reward_run_for(cfg: _GroupConfig, settings: Settings) -> RewardRun:
    """The reward run named in the config, checked to be trained on the policy's base model (a reward model judges
    answers like those it learned from, of its own base), as PPO checks its own."""
    return common.reward_run_for(cfg, settings, "a reward model judges answers of the base it learned from",
                                 or_else=", or set reward_source to checks")


def example_of(row: dict[str, Any]) -> HeldoutExample:
    """The held-out example carried in an answer's dataset row."""
    return HeldoutExample(**{name: row[name] for name in EXAMPLE_FIELDS})


def check_scores(rows: list[dict[str, Any]], texts: list[str]) -> list[float]:
    """The checks' reward: 1.0 when the answer passes its example's check (:func:`evaluation.is_correct`, on the
    answer's first line, as Evaluate scores), 0.0 otherwise."""
    return [1.0 if evaluation.is_correct(text, example_of(row)) else 0.0 for row, text in zip(rows, texts)]


def reward_model_scorer(run: RewardRun, settings: Settings, batch_size: int) -> Scorer:
    """A reward run as a scorer: its own copy of the base with its adapter and score head, scoring each (prompt,
    answer) as the Reward tab does."""
    from playground.runs.reward_model import RewardModel

    model = RewardModel(run, settings)
    print(f"Reward model {run.name}: a second copy of the base with its adapter and score head", flush=True)

    def score(rows: list[dict[str, Any]], texts: list[str]) -> list[float]:
        return model.score([(row["messages"], row["system"], text) for row, text in zip(rows, texts)], batch_size)

    return score


def judge_for(cfg: _GroupConfig, settings: Settings) -> Judge:
    """The config's AI judge (model resolved by the catalog as Compare resolves it, rubric checked), or a
    :class:`ConfigError` on ``judge_model`` / ``judge_rubric`` saying what is wrong."""
    from playground.models.catalog import CatalogError, list_models, resolve_choice
    from playground.ratings.judge import DEFAULT_RUBRIC, Judge

    try:
        spec = resolve_choice(cfg.judge_model, list_models(settings))
    except CatalogError as error:
        raise ConfigError("judge_model", str(error)) from error
    try:
        return Judge(spec, cfg.judge_rubric.strip() or DEFAULT_RUBRIC)
    except ValueError as error:
        raise ConfigError("judge_rubric", str(error)) from error


REWARD_OF_VERDICT = {"a": 1.0, "tie": 0.5, "b": 0.0}
"""A judged answer's reward: 1 when the judge prefers it to the starting policy's answer in both orders, 0 when it
prefers the starting answer in both, ½ otherwise (a tie, or the two orders disagree)."""

Anchor = Callable[[dict[str, Any]], str]
"""anchor(an answer's dataset row) → the answer the judged one is compared with."""


def start_answers(cfg: _GroupConfig, settings: Settings, cache: Any) -> Anchor:
    """The starting policy's own answer to a prompt — the base with the SFT run's adapter when the run starts from
    one — greedy, at most ``response_length`` tokens, in the run's prompt format, on the backend and precision the
    policy trains in (transformers; 4-bit when the run is), through the same generation path as Compare. Each
    prompt is answered once, when first asked, and kept: the yardstick every later answer to it is judged against."""
    import threading
    from dataclasses import replace

    from playground.models.generation import GenerationParams, answer
    from playground.models.loading import LoadOptions
    from playground.train.common import base_spec, sft_adapter, uses_4bit

    adapter = sft_adapter(cfg, settings)
    spec = replace(base_spec(cfg, settings), adapter=str(adapter) if adapter else None)
    options = LoadOptions(quant="4bit" if uses_4bit(cfg) else "none", backend="transformers")
    params = GenerationParams(temperature=0.0, top_p=1.0, top_k=0, max_new_tokens=cfg.response_length,
                              repetition_penalty=1.0)
    kept: dict[str, str] = {}

    def anchor(row: dict[str, Any]) -> str:
        key = json.dumps([row["system"], row["messages"]])
        if key not in kept:
            *_, last = answer(cache, spec, options, row["messages"], cfg.prompt_format, row["system"], params,
                              threading.Event())
            if last.error:
                raise RuntimeError(f"The starting policy {spec.name} could not answer a prompt: {last.error}")
            kept[key] = last.text.strip()
        return kept[key]

    return anchor


def judge_scorer(judge: Judge, cache: Any, anchor: Anchor) -> Scorer:
    """An AI judge as a scorer (RL from AI feedback). A judge compares two answers, so each answer is compared with
    ``anchor``'s answer to the same prompt — the starting policy's (:func:`start_answers`) — in both orders
    (:func:`playground.ratings.judge.judge_answers`), and rewarded :data:`REWARD_OF_VERDICT`. The mean reward is
    then the policy's win rate against where it started, on the training prompts and on the held-out ones alike
    (a comparison within the group would average ½ whatever the policy does); GRPO's and RLOO's baselines still
    compare an answer with its group's. Each answer is judged on its own, so it needs no other answer in the same
    call (a group split across processes is fine). A pair too long for the judge's context is a tie: it can't be
    read whole, and isn't judged on a cut prompt. The judge and the starting policy are models of their own in
    memory, loaded once each through ``cache``."""
    from playground.ratings.judge import TooLong, judge_answers

    def score(rows: list[dict[str, Any]], texts: list[str]) -> list[float]:
        rewards = []
        for row, text in zip(rows, texts):
            try:
                verdict = judge_answers(cache, judge, row["messages"], text, anchor(row), row["system"]).winner
            except TooLong:
                verdict = "tie"
            rewards.append(REWARD_OF_VERDICT[verdict])
        return rewards

    return score


def scorer_for(cfg: _GroupConfig, settings: Settings) -> Scorer:
    """The config's reward source as a scorer."""
    if cfg.reward_source == "checks":
        return check_scores
    if cfg.reward_source == "judge":
        from playground.models.loading import ModelCache

        judge, cache = judge_for(cfg, settings), ModelCache(settings)
        print(f"AI judge {judge.model}: each answer against the starting policy's answer to its prompt, both "
              f"orders", flush=True)
        return judge_scorer(judge, cache, start_answers(cfg, settings, cache))
    return reward_model_scorer(reward_run_for(cfg, settings), settings, cfg.batch_size)


def _text(completion: Any) -> str:
    """An answer's text: TRL hands a completion as text, or as the assistant's message(s) in the chat format."""
    return completion if isinstance(completion, str) else "".join(m["content"] for m in completion)


class RewardFunction:
    """The reward as TRL calls a reward function — ``(prompts, completions, completion_ids, **columns)`` → one
    float per answer — which also writes a few of each training step's answers to ``samples.jsonl`` for the Runs
    tab's answer viewer (prompt, answer, reward, tokens, whether it ended). ``trainer`` is set once the trainer is
    built: the held-out evaluation's answers (the trainer's model in eval mode) are scored but not kept."""

    __name__ = "score"  # TRL names the metrics after it: rewards/score/mean, rewards/score/std

    def __init__(self, scorer: Scorer, folder: RunFolder, samples_per_step: int, eos_token_id: int | None) -> None:
        self.scorer = scorer
        self.folder = folder
        self.samples_per_step = samples_per_step
        self.eos_token_id = eos_token_id
        self.trainer: Any = None

    def __call__(self, prompts: list[Any], completions: list[Any], completion_ids: list[list[int]],
                 trainer_state: Any = None, **columns: Any) -> list[float]:
        for hook in ("log_extra", "log_metric", "environments"):  # TRL's, not the dataset's
            columns.pop(hook, None)
        rows = [dict(zip(columns, values)) for values in zip(*columns.values())]
        texts = [_text(c).strip() for c in completions]
        scores = [float(s) for s in self.scorer(rows, texts)]
        training = self.trainer is None or self.trainer.model.training
        if training and is_main_process() and self.samples_per_step:
            step = (trainer_state.global_step if trainer_state is not None else 0) + 1  # the step these answers make
            self._keep(step, rows, texts, completion_ids, scores)
        return scores

    def _keep(self, step: int, rows: list[dict[str, Any]], texts: list[str], ids: list[list[int]],
              scores: list[float]) -> None:
        from playground.data.instructions import short

        with self.folder.samples_file.open("a") as out:
            for row, text, tokens, score in list(zip(rows, texts, ids, scores))[: self.samples_per_step]:
                prompt = row["messages"][-1]["content"] if row.get("messages") else ""
                out.write(json.dumps({"step": step, "prompt": short(prompt, 300), "answer": text,
                                      "score": round(score, 4), "tokens": len(tokens),
                                      "eos": bool(tokens) and tokens[-1] == self.eos_token_id}) + "\n")


# ---------------------------------------------------------------------------------------------- the trainer


def build_trainer(trainer_class: type[Any], args_class: type[Any], cfg: _GroupConfig, folder: RunFolder,
                  **stage_args: Any) -> tuple[Any, RunCallback]:
    """GRPO's or RLOO's trainer for ``cfg``: the policy (a fresh LoRA via peft_config, or the SFT run's adapter with
    TRL's frozen ``ref`` copy), the prompts split into train and held out, the reward function, and the arguments
    both share (one generation of batch_size × gradient_accumulation answers per optimizer step, held-out prompts
    answered once each); ``stage_args`` are the trainer's own."""
    from datasets import Dataset

    settings = settings_for(cfg)
    tasks = check_tasks(cfg, settings)
    scorer = scorer_for(cfg, settings)
    model, tokenizer, precision, peft_config = build_model(cfg, settings)
    train_tasks, held_tasks = split(tasks, cfg.eval_fraction, cfg.seed)
    train_rows, cut = prompt_rows(train_tasks, tokenizer, cfg)
    held_rows, held_cut = prompt_rows(held_tasks, tokenizer, cfg)
    if len(train_rows) < prompts_per_step(cfg):
        raise ConfigError("max_length", f"only {len(train_rows)} prompts fit in max_length − response_length "
                                        f"({cfg.max_length - cfg.response_length} tokens), fewer than the "
                                        f"{prompts_per_step(cfg)} a step answers: raise max_length.")
    print(f"{len(train_rows)} prompts ({len(held_rows)} held out; {cut + held_cut} too long left out); reward: "
          f"{cfg.reward_source}; {cfg.answers_per_prompt} answers to each of {prompts_per_step(cfg)} prompts a step",
          flush=True)
    reward = RewardFunction(scorer, folder, cfg.samples_per_step, tokenizer.eos_token_id)
    trainer, callback = trl_stage.build_trainer(
        trainer_class, args_class, cfg, folder, model=model, tokenizer=tokenizer, precision=precision,
        peft_config=peft_config, train=Dataset.from_list(train_rows),
        evaluation=Dataset.from_list(held_rows) if held_rows else None, trainer_args={"reward_funcs": [reward]},
        num_generations=cfg.answers_per_prompt, num_generations_eval=1, max_completion_length=cfg.response_length,
        temperature=cfg.temperature, top_k=0, top_p=1.0, beta=cfg.kl_coef, epsilon=cfg.cliprange,
        num_iterations=cfg.iterations, disable_dropout=True, **stage_args)
    reward.trainer = trainer
    return trainer, callback


def main(trainer_class: type[Any], args_class: type[Any], cfg: _GroupConfig, folder: RunFolder, resume: bool,
         **stage_args: Any) -> str:
    """Train GRPO or RLOO in ``folder`` (:func:`trl_stage.run_stage`); returns "finished" or "stopped". The held-out
    reward is measured at the last step too (transformers evaluates there itself when it is no eval step)."""
    return trl_stage.run_stage(*build_trainer(trainer_class, args_class, cfg, folder, **stage_args), cfg, folder,
                               resume, reward_source=cfg.reward_source, reward_run=cfg.reward_run,
                               judge_model=cfg.judge_model)
