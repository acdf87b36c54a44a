"""Held-out evaluation: does instruction tuning generalize to tasks the SFT data never contained?

The lecture's claim (FLAN, T0) is that tuning on many instruction tasks makes a model better at *unseen* ones. We
measure it the plain way: a base model and the same base plus a LoRA adapter answer the same held-out examples
(``assets/datasets/heldout.jsonl``, task families kept out of every bundled SFT set) greedily, one at a time,
through :func:`playground.models.generation.answer` — exactly what the Compare tab would show — and each answer is scored
by a small pure rule on the answer's first line (:func:`is_correct`). The result is accuracy per task family, base
vs tuned, with 95 % bootstrap intervals (paired for the change), as a table and a grouped bar chart with error bars;
the Runs tab saves it into the run folder as ``eval.json``. :func:`evaluate_heldout` is the one entry point (the Runs
tab, ``python -m bench.heldout``).
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import unicodedata
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from scipy.stats import bootstrap

from playground.core.files import write_atomic
from playground.core.row_files import TOO_DEEP, json_error_text
from playground.models.catalog import ModelSpec
from playground.models.generation import GenerationParams, StreamUpdate, answer
from playground.models.loading import LoadOptions, ModelCache
from playground.models.prompting import PromptFormat

HELDOUT = Path(__file__).resolve().parents[2] / "assets" / "datasets" / "heldout.jsonl"
EVAL_FILE = "eval.json"
ALL_TASKS = "all tasks"
Check = Literal["exact", "contains"]
CHECKS: tuple[str, ...] = ("exact", "contains")
Progress = Callable[[float, str], None]

# Greedy and with no repetition penalty: the model's single most likely answer, so a score is reproducible and a
# penalty can't stop a model from repeating a word of the question that *is* the answer.
_GREEDY = GenerationParams(temperature=0.0, repetition_penalty=1.0)
_DEFAULT_OPTIONS = LoadOptions()
MAX_NEW_TOKENS = 16
"""Enough for a one-line answer (a word, a number, a short sentence); generation also stops at the end of the first
line, which is all either check reads, so a model that rambles costs at most this many tokens."""
CONTAINS_MAX_WORDS = 12
"""A ``contains`` answer must sit in a first line of at most this many words: a sentence, not rambling."""
CONFIDENCE = 0.95
RESAMPLES = 2000
BOOTSTRAP_SEED = 0


class HeldoutError(ValueError):
    """A held-out file that can't be used; the message names the file, the line and what is wrong."""


class EvaluationError(RuntimeError):
    """A model failed (didn't load, or raised while generating): no score is given rather than a wrong one."""


class EvaluationStopped(RuntimeError):
    """The user pressed Stop; the partial result is dropped, since accuracy on a subset would mislead."""


@dataclass(frozen=True)
class HeldoutExample:
    """One held-out question: an instruction (plus optional input), the expected answer, and how to check it."""

    id: str
    task: str
    """Task family, e.g. ``capital_city``; accuracy is reported per family."""
    instruction: str
    input: str
    """Extra text after the instruction (may be empty)."""
    answer: str
    check: Check
    """exact: the first line of the output is the answer (for closed answers); contains: the first line is one short
    sentence holding the answer as a whole word/number, and not a list of candidates (see :func:`is_correct`)."""

    @property
    def prompt(self) -> str:
        """The user message: the instruction, then a blank line and the input when there is one."""
        return f"{self.instruction}\n\n{self.input}" if self.input.strip() else self.instruction


# ---------------------------------------------------------------------------------------------- scoring

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
_TRAILING = ".!?。"


def normalize(text: str) -> str:
    """Case- and form-insensitive text: NFKC (full-width ``１２`` → ``12``, composed accents), curly quotes made
    straight, casefolded (``Straße`` = ``strasse``), runs of whitespace made one space, ends stripped."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES).casefold()
    return " ".join(text.split())


def _first_line(output: str) -> str:
    """The first non-blank line: the model's answer before whatever it rambles on with."""
    return next((line for line in output.splitlines() if line.strip()), "")


def _strip_trailing(text: str) -> str:
    return text.rstrip().rstrip(_TRAILING).rstrip()


_ARTICLE = re.compile(r"^(?:a|an|the)\s+")


def _bare(text: str) -> str:
    """A closed answer without trailing ``. ! ?`` and without one leading article: ``A key.`` is ``key``. SQuAD's
    exact match drops articles too; a leading one only here, so that ``the Hague`` still can't be ``Hague, the``."""
    return _ARTICLE.sub("", _strip_trailing(text), count=1)


def _whole(answer_text: str) -> re.Pattern[str]:
    """A pattern matching ``answer_text`` only as a whole word or number.

    ``(?<!\\w)`` / ``(?!\\w)`` rather than ``\\b`` so answers that start or end with punctuation (``C++``, ``-4``)
    work. Around digits a decimal point or comma joins: ``12`` does not match ``120``, ``12.5``, ``3,120`` or
    ``-12`` (a minus glued to the number, not a range like ``10-12``).
    """
    left = r"(?<!\w)(?<!\d[.,])"
    if answer_text[:1].isdigit():
        left += r"(?<!(?<!\w)-)"
    return re.compile(left + re.escape(answer_text) + r"(?!\w)(?![.,]\d)")


_LIST_MARKS = re.compile(r"\bor\b|/|\||;")


def _is_candidate_list(line: str, answer_pattern: re.Pattern[str]) -> bool:
    """Whether ``line`` offers several candidates rather than one answer: once the answer is cut out, what is left
    still holds an "or", a slash, a bar or a semicolon, two or more commas (``Paris, Lyon, Marseille``), or a comma
    and an "and" (``12, 13 and 14``)."""
    rest = answer_pattern.sub(" ", line)
    commas = rest.count(",")
    return bool(_LIST_MARKS.search(rest)) or commas >= 2 or (commas == 1 and re.search(r"\band\b", rest) is not None)


def is_correct(output: str, example: HeldoutExample) -> bool:
    """Whether a model's output answers ``example``, by its ``check`` (see :class:`HeldoutExample`).

    Both checks read the first non-blank line only: what follows is rambling, and an answer found somewhere in it
    is not credited. Both sides are normalized the same way (:func:`normalize`).

    * ``exact``: the line is the answer; trailing ``. ! ?`` and one leading article (a, an, the) are dropped from
      both, so ``Paris.`` is right for ``Paris`` and ``A key`` for ``key``.
    * ``contains``: the line holds the answer as a whole word or number, has at most :data:`CONTAINS_MAX_WORDS`
      words, and is not a list of candidates (``Paris or Lyon``, ``Paris, Lyon, Marseille``).

    An empty output is never right.
    """
    expected = normalize(example.answer)
    if not expected or not output.strip():
        return False
    line = normalize(_first_line(output))
    if example.check == "exact":
        return _bare(line) == _bare(expected)
    if example.check == "contains":
        pattern = _whole(expected)
        return (pattern.search(line) is not None and len(line.split()) <= CONTAINS_MAX_WORDS
                and not _is_candidate_list(line, pattern))
    raise ValueError(f"unknown check {example.check!r}; use one of {', '.join(CHECKS)}")


# ---------------------------------------------------------------------------------------------- the data file


def _example(row: object, where: str) -> HeldoutExample:
    """One JSON line checked and turned into an example; HeldoutError says which field is wrong."""
    if not isinstance(row, dict):
        raise HeldoutError(f"{where}: expected an object like {{\"id\": …, \"task\": …, \"instruction\": …}}.")
    values: dict[str, str] = {}
    for name in ("id", "task", "instruction", "input", "answer", "check"):
        value = row.get(name, "" if name == "input" else None)
        if not isinstance(value, str):
            raise HeldoutError(f"{where}: '{name}' is missing or not text.")
        if name != "input" and not value.strip():
            raise HeldoutError(f"{where}: '{name}' is empty.")
        values[name] = value.strip()
    if values["check"] not in CHECKS:
        raise HeldoutError(f"{where}: 'check' must be exact or contains, got {values['check']!r}.")
    if values["check"] == "exact" and not _strip_trailing(normalize(values["answer"])):
        raise HeldoutError(f"{where}: the answer is only punctuation, which an exact check can't compare.")
    return HeldoutExample(**values)  # type: ignore[arg-type]


def load_heldout(path: Path = HELDOUT) -> list[HeldoutExample]:
    """Read held-out examples from JSON lines, checking every line; HeldoutError (a ValueError) names the bad one."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as error:
        raise HeldoutError(f"{path} does not exist.") from error
    except (OSError, UnicodeDecodeError) as error:
        raise HeldoutError(f"{path.name} can't be read as UTF-8 text: {error}") from error
    examples: list[HeldoutExample] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path.name} line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise HeldoutError(f"{where}: {json_error_text(error)}.") from error
        except RecursionError as error:
            raise HeldoutError(f"{where}: {TOO_DEEP}.") from error
        example = _example(row, where)
        if example.id in seen:
            raise HeldoutError(f"{where}: id {example.id!r} is already used on line {seen[example.id]}.")
        seen[example.id] = number
        examples.append(example)
    if not examples:
        raise HeldoutError(f"{path.name} has no examples.")
    return examples


# ---------------------------------------------------------------------------------------------- intervals


def _interval(data: tuple[np.ndarray, ...], statistic: Callable[..., np.ndarray], seed: int) -> tuple[float, float]:
    """95 % percentile-bootstrap interval (in percent) of ``statistic`` over resampled examples; NaN for fewer than
    two examples (one example says nothing about spread). scipy's bootstrap, seeded, so the same marks always give
    the same interval."""
    if len(data[0]) < 2:
        return math.nan, math.nan
    result = bootstrap(data, statistic, n_resamples=RESAMPLES, confidence_level=CONFIDENCE, method="percentile",
                       paired=len(data) > 1, vectorized=True, rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return round(100 * float(low), 1), round(100 * float(high), 1)


def accuracy_interval(marks: list[bool], seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """The 95 % percentile-bootstrap interval of the accuracy (percent) of these right/wrong marks."""
    return _interval((np.asarray(marks, dtype=float),), lambda x, axis: x.mean(axis=axis), seed)


def gain_interval(base: list[bool], tuned: list[bool], seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """The 95 % paired-bootstrap interval of tuned − base accuracy (percentage points): each resample draws the same
    examples for both models, so the interval reflects the examples both answered, not two independent draws."""
    if len(base) != len(tuned):
        raise ValueError("a paired interval needs one base and one tuned mark per example")
    return _interval((np.asarray(tuned, dtype=float), np.asarray(base, dtype=float)),
                     lambda t, b, axis: t.mean(axis=axis) - b.mean(axis=axis), seed)


# ---------------------------------------------------------------------------------------------- results


@dataclass
class EvalResult:
    """One model's answers to the held-out examples: a row per example (id, task, answer, output, correct)."""

    model: str
    """The spec's display name, e.g. ``gemma-3-270m + sft-run``."""
    prompt_format: str
    rows: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    """Wall time of the evaluation (loading included); 0 in results saved before it was recorded."""

    def by_task(self) -> pd.DataFrame:
        """Accuracy per task family: columns task, correct, total, accuracy % (0–100) and its 95 % bootstrap
        interval (low %, high %), sorted by task."""
        columns = ["task", "correct", "total", "accuracy %", "low %", "high %"]
        if not self.rows:
            return pd.DataFrame(columns=columns)
        frame = pd.DataFrame(self.rows)
        table = frame.groupby("task", sort=True)["correct"].agg(correct="sum", total="count").reset_index()
        table["correct"] = table["correct"].astype(int)
        table["accuracy %"] = (100 * table["correct"] / table["total"]).round(1)
        intervals = [accuracy_interval(list(frame.loc[frame["task"] == task, "correct"])) for task in table["task"]]
        table["low %"] = [low for low, _ in intervals]
        table["high %"] = [high for _, high in intervals]
        return table[columns]

    @property
    def accuracy(self) -> float:
        """Share of all examples answered correctly, in percent (0 when there are no rows)."""
        if not self.rows:
            return 0.0
        return 100 * sum(bool(row["correct"]) for row in self.rows) / len(self.rows)


def _first_line_done(text: str) -> bool:
    """Whether ``text`` already holds a whole non-blank first line (a line break after some text)."""
    return bool(text.strip()) and "\n" in text.lstrip()


def _run_one(cache: ModelCache, spec: ModelSpec, example: HeldoutExample, fmt: PromptFormat, options: LoadOptions,
             params: GenerationParams, stop: threading.Event, status: Callable[[str], None]) -> str:
    """One greedy answer through the Compare tab's path; a model error or a stop raises instead of returning.

    Generation ends at the end of the first non-blank line (the checks read nothing else), which keeps a rambling
    model's evaluation short; the text is returned as generated, up to the token that ended the line.
    """
    messages = [{"role": "user", "content": example.prompt}]
    last = StreamUpdate()
    enough = threading.Event()  # this answer only: the first line is complete, or the user pressed Stop
    try:
        for last in answer(cache, spec, options, messages, fmt, "", params, enough):
            if last.status:
                status(last.status)
            if stop.is_set() or _first_line_done(last.text):
                enough.set()
    except Exception as error:
        raise EvaluationError(f"{spec.name} failed on held-out example {example.id}: {error}") from error
    if stop.is_set():
        raise EvaluationStopped(f"Evaluation of {spec.name} stopped at example {example.id}.")
    if last.error or not last.done:
        reason = last.error or "the answer ended without finishing"
        raise EvaluationError(f"{spec.name} failed on held-out example {example.id}: {reason}")
    return last.text


def greedy_answer(cache: ModelCache, spec: ModelSpec, example: HeldoutExample, prompt_format: PromptFormat,
                  options: LoadOptions = _DEFAULT_OPTIONS, max_new_tokens: int = MAX_NEW_TOKENS,
                  stop: threading.Event | None = None) -> str:
    """One example's greedy answer as :func:`evaluate` gets it (up to the end of its first line); raises
    EvaluationError when the model fails. For other scorers of first-line answers (BIG-Bench's exact match)."""
    params = GenerationParams(**{**asdict(_GREEDY), "max_new_tokens": max_new_tokens})
    return _run_one(cache, spec, example, prompt_format, options, params, stop or threading.Event(), lambda _: None)


def evaluate(
    cache: ModelCache,
    spec: ModelSpec,
    examples: list[HeldoutExample],
    prompt_format: PromptFormat = "instruction",
    options: LoadOptions = _DEFAULT_OPTIONS,
    max_new_tokens: int = MAX_NEW_TOKENS,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> EvalResult:
    """Answer every example greedily with one model and score it.

    ``instruction`` is the default format for both models, so base and tuned see the same frame and only the
    weights differ. ``progress(fraction, message)`` is called before each example (and with loading lines).
    Raises EvaluationError when the model fails, EvaluationStopped when ``stop`` is set.
    """
    if not examples:
        raise ValueError("No held-out examples to evaluate.")
    params = GenerationParams(**{**asdict(_GREEDY), "max_new_tokens": max_new_tokens})
    stop = stop or threading.Event()
    report = progress or (lambda fraction, message: None)
    result = EvalResult(model=spec.name, prompt_format=prompt_format)
    started = time.monotonic()
    for index, example in enumerate(examples):
        if stop.is_set():
            raise EvaluationStopped(f"Evaluation of {spec.name} stopped before example {example.id}.")
        fraction = index / len(examples)
        report(fraction, f"{spec.name}: example {index + 1} of {len(examples)} ({example.task})")
        output = _run_one(cache, spec, example, prompt_format, options, params, stop,
                          lambda line, at=fraction: report(at, line))
        result.rows.append({"id": example.id, "task": example.task, "answer": example.answer, "output": output,
                            "correct": is_correct(output, example)})
    result.seconds = round(time.monotonic() - started, 1)
    report(1.0, f"{spec.name}: {result.accuracy:.0f}% of {len(examples)} held-out examples correct")
    return result


# ---------------------------------------------------------------------------------------------- base vs tuned


COMPARE_COLUMNS = ["task", "n", "base %", "base low", "base high", "tuned %", "tuned low", "tuned high", "change",
                   "change low", "change high"]
""":func:`compare`'s columns: accuracy in percent with its 95 % bootstrap interval (low, high) for each model, and the
change in percentage points with its paired-bootstrap interval."""


def _marks(result: EvalResult, ids: list[str]) -> list[bool]:
    by_id = {row["id"]: bool(row["correct"]) for row in result.rows}
    return [by_id[i] for i in ids]


def _row(task: str, ids: list[str], base: EvalResult, tuned: EvalResult) -> dict:
    left, right = _marks(base, ids), _marks(tuned, ids)
    base_pct, tuned_pct = 100 * sum(left) / len(ids), 100 * sum(right) / len(ids)
    return {"task": task, "n": len(ids), "base %": round(base_pct, 1),
            **dict(zip(("base low", "base high"), accuracy_interval(left))),
            "tuned %": round(tuned_pct, 1), **dict(zip(("tuned low", "tuned high"), accuracy_interval(right))),
            "change": round(tuned_pct - base_pct, 1),
            **dict(zip(("change low", "change high"), gain_interval(left, right)))}


def compare(base: EvalResult, tuned: EvalResult) -> pd.DataFrame:
    """Per task family (sorted), then an ``all tasks`` row: n, base % and tuned % with their 95 % percentile-
    bootstrap intervals, and the change (percentage points) with its paired-bootstrap interval (see
    :data:`COMPARE_COLUMNS`). Works on results saved before intervals existed: they are computed from the rows.

    Both results must cover the same examples, else the comparison would mix questions (ValueError).
    """
    if {r["id"] for r in base.rows} != {r["id"] for r in tuned.rows}:
        raise ValueError(f"{base.model} and {tuned.model} were evaluated on different examples; evaluate both "
                         f"on the same held-out set.")
    ids_by_task: dict[str, list[str]] = {}
    for row in base.rows:
        ids_by_task.setdefault(row["task"], []).append(row["id"])
    rows = [_row(task, ids_by_task[task], base, tuned) for task in sorted(ids_by_task)]
    rows.append(_row(ALL_TASKS, [row["id"] for row in base.rows], base, tuned))
    return pd.DataFrame(rows, columns=COMPARE_COLUMNS)


@dataclass
class HeldoutComparison:
    """Base vs tuned on the same held-out examples: both results and :func:`compare`'s table with intervals."""

    base: EvalResult
    tuned: EvalResult
    table: pd.DataFrame


def evaluate_heldout(
    cache: ModelCache,
    base: ModelSpec,
    tuned: ModelSpec,
    examples: list[HeldoutExample] | None = None,
    prompt_format: PromptFormat = "instruction",
    options: LoadOptions = _DEFAULT_OPTIONS,
    max_new_tokens: int = MAX_NEW_TOKENS,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> HeldoutComparison:
    """Evaluate ``base`` and then ``tuned`` on the held-out examples (the bundled set when None) in the same prompt
    frame, and compare them per task family with 95 % bootstrap intervals.

    The one way to do this job: the Runs tab's Evaluate button and ``python -m bench.heldout`` call it.
    ``progress(fraction, message)`` runs from 0 to 1 over both models. Raises EvaluationError when a model fails,
    EvaluationStopped when ``stop`` is set.
    """
    examples = load_heldout() if examples is None else examples
    report = progress or (lambda fraction, message: None)
    results = []
    for index, spec in enumerate((base, tuned)):
        results.append(evaluate(cache, spec, examples, prompt_format, options, max_new_tokens,
                                lambda fraction, message, index=index: report((index + fraction) / 2, message), stop))
    return HeldoutComparison(results[0], results[1], compare(*results))


def bar_chart(table: pd.DataFrame, base_name: str = "base", tuned_name: str = "tuned") -> go.Figure:
    """Grouped bars, base vs tuned, per task family (and all tasks), from :func:`compare`'s table, each with its
    95 % bootstrap interval as an error bar; y is 0–100 %."""
    tasks = [str(task) for task in table["task"]]
    figure = go.Figure()
    for key, name in (("base", base_name), ("tuned", tuned_name)):
        values = [float(v) for v in table[f"{key} %"]]
        lows = [float(v) for v in table[f"{key} low"]]
        highs = [float(v) for v in table[f"{key} high"]]
        figure.add_trace(go.Bar(
            x=tasks, y=values, name=name, text=[f"{v:.0f}%" for v in values], textposition="inside",
            error_y={"type": "data", "symmetric": False, "array": [h - v for h, v in zip(highs, values)],
                     "arrayminus": [v - lo for v, lo in zip(values, lows)]},
            customdata=[[n, lo, h] for n, lo, h in zip(table["n"], lows, highs)],
            hovertemplate=f"{name}<br>%{{x}}: %{{y:.1f}}% of %{{customdata[0]}}"
                          f"<br>95% interval %{{customdata[1]:.1f}}–%{{customdata[2]:.1f}}%<extra></extra>"))
    figure.update_layout(
        title="Held-out (unseen) task accuracy: base vs tuned, 95% bootstrap intervals", barmode="group",
        height=420, xaxis_title="task family (not in the SFT data)", yaxis_title="accuracy (%)",
        yaxis_range=[0, 105], legend_title_text="model", margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return figure


def markdown_table(table: pd.DataFrame) -> str:
    """:func:`compare`'s table as Markdown: per family base / tuned / change, each with its 95 % interval."""
    def cell(value: float, low: float, high: float, signed: bool = False) -> str:
        shown = f"{value:+.1f}" if signed else f"{value:.1f}"
        if math.isnan(low):
            return shown
        return f"{shown} [{low:+.1f}, {high:+.1f}]" if signed else f"{shown} [{low:.1f}, {high:.1f}]"

    lines = ["| task family | n | base % [95% CI] | tuned % [95% CI] | change, points [95% paired CI] |",
             "|---|---|---|---|---|"]
    for row in table.to_dict("records"):
        name = f"**{row['task']}**" if row["task"] == ALL_TASKS else row["task"]
        lines.append(f"| {name} | {row['n']} | {cell(row['base %'], row['base low'], row['base high'])} | "
                     f"{cell(row['tuned %'], row['tuned low'], row['tuned high'])} | "
                     f"{cell(row['change'], row['change low'], row['change high'], signed=True)} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- saving


def save(results: list[EvalResult], folder: Path) -> Path:
    """Write ``folder/eval.json`` (the results and a UTC timestamp) via a temporary file and a rename, so a crash
    never leaves half a file where the Runs tab would read it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "results": [asdict(result) for result in results]}
    final = folder / EVAL_FILE
    write_atomic(final, json.dumps(payload, ensure_ascii=False, indent=1))
    return final


def load_saved(folder: Path) -> list[EvalResult] | None:
    """The results saved in ``folder/eval.json``; None when there is none. A damaged file raises ValueError."""
    path = Path(folder) / EVAL_FILE
    if not path.is_file():
        return None
    names = {f.name for f in fields(EvalResult)}
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        return [EvalResult(**{k: v for k, v in item.items() if k in names}) for item in payload["results"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as error:
        raise ValueError(f"{path} is damaged ({type(error).__name__}: {error}); evaluate again to replace it.") \
            from error
