"""Trained reward models: find them, load one, score answers, and check it against the human votes.

A reward run's ``adapter/`` holds a sequence-classification LoRA adapter with its score head (one output) for
the base model named in ``adapter_config.json``, and ``playground.json`` says how it rendered prompts and how long a
sequence it saw. Scores come from the same :func:`playground.data.preference_pairs.encode` the run trained on, so a
stored pair scores here exactly as it did in training.

Two checks a user should make before trusting a reward model (and before PPO optimizes against it): does it agree
with *your* votes (per rater, per model pair), and does it just prefer longer answers (length bias, a known failure
of reward models: Singhal et al. 2023, "A Long Way to Go")?
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from playground.core.files import write_atomic
from playground.core.settings import Settings
from playground.data.preference_pairs import encode
from playground.models.adapters import AdapterError, adapter_config
from playground.models.catalog import list_models, resolve_choice
from playground.models.loading import ModelCache
from playground.models.prompting import Message
from playground.ratings.leaderboard import display_name, model_identity
from playground.ratings.store import ComparisonRecord

CHECK_FILE = "agreement.json"
"""In a reward run's folder: the last check against the votes (agreement, length bias), written by the app."""


class RewardModelError(ValueError):
    """A reward model that can't be used (no such run, not finished, unreadable); the message says why."""


@dataclass(frozen=True)
class RewardRun:
    """A reward run with a saved adapter: what the pickers list."""

    name: str
    adapter: Path
    base_model: str
    prompt_format: str
    max_length: int
    quantized: bool


def reward_runs(settings: Settings) -> list[RewardRun]:
    """Every run whose adapter is a reward model (finished or stopped), by name."""
    found = []
    root = settings.runs_dir
    for run in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        try:
            found.append(read_run(run / "adapter"))
        except RewardModelError:
            continue
    return found


def read_run(adapter: Path) -> RewardRun:
    """The reward run whose adapter is in ``adapter`` (a run's ``adapter/`` folder)."""
    try:
        config = adapter_config(adapter)
        info = json.loads((adapter / "playground.json").read_text(encoding="utf-8"))
    except (AdapterError, OSError, ValueError, RecursionError) as error:  # ValueError: not JSON, or not UTF-8
        raise RewardModelError(f"{adapter} holds no saved reward model ({error}).") from error
    if not isinstance(info, dict) or config.get("task_type") != "SEQ_CLS" or info.get("stage") != "reward":
        raise RewardModelError(f"{adapter} is not a reward model's adapter.")
    return RewardRun(name=info.get("run", adapter.parent.name), adapter=adapter, base_model=info["base_model"],
                     prompt_format=info.get("prompt_format", "instruction"), max_length=int(info.get("max_length", 512)),
                     quantized=bool(info.get("quantized", False)))


def find_run(name: str, settings: Settings) -> RewardRun:
    """A reward run by name, or a message listing the ones there are."""
    runs = {r.name: r for r in reward_runs(settings)}
    if name not in runs:
        known = ", ".join(runs) or "none yet: train one in the Train tab (stage: Reward model)"
        raise RewardModelError(f"No reward model {name!r}. Reward models: {known}.")
    return runs[name]


class RewardModel:
    """A loaded reward model: base as a one-output classifier + the run's LoRA adapter and score head."""

    def __init__(self, run: RewardRun, settings: Settings) -> None:
        from playground.models.loading import LoadOptions, build_model, pick_device, resolve_dtype

        self.run = run
        self.device = pick_device()
        # Built by the one loader with the options the run trained with (4-bit iff the run was), and scored under
        # the autocast it trained under, so a pair scores with the numerics it trained on, and as PPO scores it.
        options = LoadOptions(dtype="auto", quant="4bit" if run.quantized else "none")
        spec = resolve_choice(run.base_model, list_models(settings))
        self.model, self.tokenizer = build_model(spec, settings, options, head="score", adapter=run.adapter)
        self.model.eval()
        self.footprint_bytes = int(self.model.get_memory_footprint())
        self.dtype = resolve_dtype("auto", self.device, self.model.config.model_type)

    def score(self, items: Sequence[tuple[list[Message], str, str]], batch_size: int = 8) -> list[float]:
        """r(x, y) for each (messages, system prompt, answer): the score head's output at the last token."""
        import torch

        from playground.models.loading import compute_autocast

        scores: list[float] = []
        for start in range(0, len(items), batch_size):
            ids = [encode(self.tokenizer, messages, system, answer, self.run.prompt_format, self.run.max_length)
                   for messages, system, answer in items[start:start + batch_size]]
            batch = self.tokenizer.pad({"input_ids": ids}, padding_side="right", return_tensors="pt").to(self.device)
            with torch.no_grad(), compute_autocast(self.device, self.dtype):
                logits = self.model(**batch).logits  # (batch, 1)
            scores += logits[:, 0].float().tolist()
        return scores


class RewardModels:
    """The app's loaded reward model (one at a time: they are as large as the base), shared by every session."""

    def __init__(self, settings: Settings, cache: ModelCache | None = None) -> None:
        """``cache``: the app's model cache, which counts the loaded reward model against its memory budgets and
        unloads its own models to make room for it."""
        self.settings = settings
        self._lock = threading.Lock()
        self._loaded: tuple[tuple, RewardModel] | None = None
        self.cache = cache
        if cache is not None:
            cache.count_also(self.held)

    def held(self) -> list[tuple[str, int]]:
        """(device, bytes) of the loaded reward model, if any (read without the lock: the cache asks under its own)."""
        loaded = self._loaded
        return [(str(loaded[1].device), loaded[1].footprint_bytes)] if loaded is not None else []

    def unload(self) -> str | None:
        """Drop the loaded reward model (a training run needs the memory); returns its run's name, or None."""
        from playground.models.loading import free_memory

        with self._lock:
            name = self._loaded[1].run.name if self._loaded is not None else None
            self._loaded = None
        if name is not None:
            free_memory()
        return name

    def get(self, name: str) -> RewardModel:
        run = find_run(name, self.settings)
        stamp = (run.adapter / "adapter_model.safetensors").stat().st_mtime_ns  # a resumed run saves a new one
        key = (name, stamp)
        with self._lock:
            if self._loaded is None or self._loaded[0] != key:
                self._loaded = None
                self._loaded = (key, RewardModel(run, self.settings))
                if self.cache is not None:
                    self.cache.make_room()
            return self._loaded[1]


# ---------------------------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class Agreement:
    """A reward model against human votes: per comparison, then summed up."""

    rows: pd.DataFrame
    """One row per voted comparison: id, rater, pair, winner, reward_a, reward_b, agrees, words_a, words_b."""

    @property
    def overall(self) -> float:
        return float(self.rows["agrees"].mean()) if len(self.rows) else float("nan")

    def by(self, column: str) -> pd.DataFrame:
        """Agreement per rater or per model pair: votes, agreeing, share."""
        if not len(self.rows):
            return pd.DataFrame(columns=[column, "votes", "agrees", "agreement"])
        table = self.rows.groupby(column)["agrees"].agg(votes="count", agrees="sum").reset_index()
        table["agreement"] = (table["agrees"] / table["votes"]).round(3)
        return table.sort_values("votes", ascending=False, ignore_index=True)

    def lengths(self) -> pd.DataFrame:
        """Every scored answer: words and reward (for the length-bias scatter)."""
        return pd.DataFrame({"words": list(self.rows["words_a"]) + list(self.rows["words_b"]),
                             "reward": list(self.rows["reward_a"]) + list(self.rows["reward_b"])})


def _pair_label(record: ComparisonRecord) -> str:
    names = sorted(display_name(i) if i else "(unknown)" for i in (model_identity(record.a), model_identity(record.b)))
    return " vs ".join(names)


def agreement(model: RewardModel, records: Sequence[ComparisonRecord]) -> Agreement:
    """Score both answers of every comparison voted Left/Right better (ties and both-bad say nothing about order)
    and check the reward model ranks them as the human did."""
    voted = [r for r in records if r.winner in ("a", "b")]
    items = [(r.messages, r.system_prompt, side.response) for r in voted for side in (r.a, r.b)]
    scores = model.score(items)
    rows = []
    for index, record in enumerate(voted):
        reward_a, reward_b = scores[2 * index], scores[2 * index + 1]
        rows.append({"id": record.id, "rater": record.rater or "(no name)", "pair": _pair_label(record),
                     "winner": record.winner, "reward_a": reward_a, "reward_b": reward_b,
                     "agrees": (reward_a > reward_b) == (record.winner == "a"),
                     "words_a": len(record.a.response.split()), "words_b": len(record.b.response.split())})
    columns = ["id", "rater", "pair", "winner", "reward_a", "reward_b", "agrees", "words_a", "words_b"]
    return Agreement(pd.DataFrame(rows, columns=columns))


def length_correlation(lengths: pd.DataFrame) -> tuple[float, float]:
    """Pearson's r between answer length and reward, and its p-value (NaN with fewer than 3 answers or no
    spread). r near +1: the model mostly rewards length."""
    from scipy.stats import pearsonr

    if len(lengths) < 3 or lengths["words"].nunique() < 2 or lengths["reward"].nunique() < 2:
        return float("nan"), float("nan")
    result = pearsonr(lengths["words"], lengths["reward"])
    return float(result.statistic), float(result.pvalue)


def length_plot(lengths: pd.DataFrame, run: str) -> Any:
    """Scatter of reward against answer length with a least-squares line and r in the title (plotly)."""
    import numpy as np
    import plotly.graph_objects as go

    r, p = length_correlation(lengths)
    figure = go.Figure(go.Scatter(x=lengths["words"], y=lengths["reward"], mode="markers", name="answers",
                                  marker={"opacity": 0.6}))
    if not np.isnan(r):
        slope, intercept = np.polyfit(lengths["words"], lengths["reward"], 1)
        xs = np.array([lengths["words"].min(), lengths["words"].max()])
        figure.add_trace(go.Scatter(x=xs, y=slope * xs + intercept, mode="lines", name="least squares"))
    title = f"{run}: reward vs length" + (f" — Pearson r = {r:.2f} (p = {p:.2g})" if not np.isnan(r) else "")
    figure.update_layout(title=title, xaxis_title="answer length (words)", yaxis_title="reward r(x, y)",
                         height=380, margin={"t": 50, "b": 40})
    return figure


def length_bias_text(r: float, p: float) -> str:
    """Pearson's r of reward vs length in words, with what it means ("" when it could not be computed)."""
    if math.isnan(r):
        return ""
    return (f"Reward vs length: Pearson r = {r:+.2f} (p = {p:.2g})"
            + (" — it strongly favours longer answers." if r > 0.5 else
               " — it favours shorter answers." if r < -0.5 else "."))


def save_check(run_dir: Path, checked: Agreement) -> dict[str, Any]:
    """Write the check's summary (votes scored, agreement, length correlation) into ``run_dir/agreement.json``, so
    the Lecture tab can show it after a restart without loading the model again; returns the summary."""
    r, p = length_correlation(checked.lengths())
    summary = {"created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "votes": len(checked.rows),
               "agreement": None if math.isnan(checked.overall) else checked.overall,
               "length_r": None if math.isnan(r) else r, "length_p": None if math.isnan(p) else p}
    write_atomic(Path(run_dir) / CHECK_FILE, json.dumps(summary, indent=1))
    return summary


def load_check(run_dir: Path) -> dict[str, Any] | None:
    """The summary :func:`save_check` wrote, or None when the run was never checked (or the file is unreadable)."""
    try:
        summary = json.loads((Path(run_dir) / CHECK_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return summary if isinstance(summary, dict) else None
