"""Instruction datasets for SFT: the bundled and uploaded files, read into examples, checked row by row, previewed.

Instruction tuning learns from many (instruction, answer) pairs. A file (JSONL, JSON, CSV or Parquet, read by
:mod:`playground.core.row_files`) holds one of four shapes, told apart by its columns (the first that matches wins):

* ``messages``: a chat, ``[{"role", "content"}, …]``, ending with the assistant's answer (the completion; only
  that last turn is learned). Leading ``system`` messages are folded into the first user turn (system text, a blank
  line, then the user's text), since not every chat template has a system role. In CSV the cell holds JSON.
* ``prompt`` + ``completion``: text, or TRL's conversational form (``prompt`` a message list ending with the
  user, ``completion`` one assistant message).
* ``instruction`` + ``input`` (optional) + ``output`` (Alpaca); ``answer`` is accepted for ``output``, as in the
  held-out file. The user turn is the instruction, then a blank line and the input when there is one.
* ``text``: plain text to learn whole (``messages`` is empty).

Optional ``task`` (the task family, counted in the preview) and ``id`` columns are kept; other columns are ignored.
A file is used all or nothing: any bad row (wrong type, empty text, missing column, a row of another shape, a huge
field) makes :class:`DatasetError`, which lists the problems by line (JSONL) or data row, field and reason.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal

import pandas as pd

from playground.core.files import listed_files, numbered_names, publish_unique
from playground.core.row_files import (
    EXTENSIONS,
    FileProblem,
    ImportLimits,
    Problems,
    RowError,
    RowProblem,
    describe,
    read_rows,
    require_text,
    text_length,
)
from playground.core.settings import Settings
from playground.models.prompting import Message, PromptError, validate_messages

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "datasets"
BUNDLED: dict[str, Path] = {"instructions": ASSETS / "instructions.jsonl", "heldout": ASSETS / "heldout.jsonl"}
EVALUATION_ONLY = frozenset({"heldout"})
"""Bundled sets kept out of training: the unseen tasks that measure whether instruction tuning generalizes."""

Shape = Literal["messages", "prompt/completion", "instruction/input/output", "text", "unknown"]
SHAPES: tuple[Shape, ...] = ("messages", "prompt/completion", "instruction/input/output", "text")
"""In the order they are detected: a row with ``messages`` is a chat even if it also has a ``text`` column."""
_MARKERS = {"messages": ("messages",), "prompt/completion": ("prompt", "completion"),
            "instruction/input/output": ("instruction", "output"), "text": ("text",)}
_EXPECTED = "prompt + completion, instruction + input + output, messages, or text"
MAX_LISTED = 20
PREVIEW_CHARS = 160
MAX_NAME_CHARS = 80


@dataclass(frozen=True)
class Example:
    """One training example: the conversation up to the last user turn, and the assistant answer to learn."""

    messages: list[Message]
    """User/assistant turns ending with the user's; empty for plain ``text`` rows."""
    completion: str
    """The answer the model learns to write (the whole text for ``text`` rows)."""
    task: str = ""
    id: str = ""


class DatasetError(ValueError):
    """A dataset that can't be used; the message lists the problems (row or line, field, reason), the first
    :data:`MAX_LISTED` in full."""

    def __init__(self, message: str, errors: list[RowError] | None = None, count: int = 0) -> None:
        super().__init__(message)
        self.errors = errors or []
        self.count = count or len(self.errors)


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset as the Data tab lists it."""

    name: str
    path: Path
    rows: int
    shape: Shape
    """One of :data:`SHAPES`, or ``unknown`` for a file in the datasets folder that isn't in any of them."""
    source: Literal["bundled", "uploaded"]
    """``bundled`` (shipped with the app) or ``uploaded`` (in ``Settings.datasets_dir``)."""
    purpose: Literal["training", "evaluation"]
    """``training``, or ``evaluation`` for held-out data that must never be trained on."""


# ---------------------------------------------------------------------------------------------- one row


def _absent(value: Any) -> bool:
    """Missing, null, an empty CSV cell, or pandas' NaN."""
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def _shape_of(columns: Any) -> str | None:
    return next((shape for shape in SHAPES if any(key in columns for key in _MARKERS[shape])), None)


def _message_list(value: Any, name: str) -> list[Message]:
    """A list of {role, content} messages with non-empty text (a JSON string is read, for CSV cells)."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise RowProblem(name, f"not a valid JSON message list ({error.msg})") from None
        except RecursionError:
            raise RowProblem(name, "not a usable JSON message list: nested too deeply") from None
    if not isinstance(value, list):
        raise RowProblem(name, f"expected a list of {{\"role\", \"content\"}} messages, got {describe(value)}")
    messages = []
    for index, item in enumerate(value, 1):
        if not isinstance(item, dict) or item.get("role") not in ("system", "user", "assistant"):
            raise RowProblem(name, f"message {index} should be {{\"role\": \"system\"|\"user\"|\"assistant\", "
                                    f"\"content\": text}}, got {item if isinstance(item, dict) else describe(item)}")
        messages.append({"role": item["role"], "content": require_text(item.get("content"), f"{name}[{index}].content")})
    return messages


def _fold_system(messages: list[Message], name: str) -> list[Message]:
    """Leading system messages go in front of the first user turn; the rest must alternate user/assistant."""
    count = next((i for i, m in enumerate(messages) if m["role"] != "system"), len(messages))
    system, turns = "\n\n".join(m["content"] for m in messages[:count]), messages[count:]
    if any(m["role"] == "system" for m in turns):
        raise RowProblem(name, "a system message is only allowed at the start")
    if system and turns:
        turns = [{"role": turns[0]["role"], "content": f"{system}\n\n{turns[0]['content']}"}] + turns[1:]
    return turns


def _prompt_turns(messages: list[Message], name: str) -> list[Message]:
    """Check that ``messages`` is a conversation ending with the user's turn, ready for the answer."""
    try:
        validate_messages(messages)
        if messages[-1]["role"] != "user":
            raise PromptError("the last message before the answer must be the user's")
    except PromptError as error:
        raise RowProblem(name, str(error)) from None
    return messages


def _from_prompt_completion(row: dict[str, Any]) -> tuple[list[Message], str]:
    if isinstance(row["prompt"], list):
        messages = _prompt_turns(_fold_system(_message_list(row["prompt"], "prompt"), "prompt"), "prompt")
    else:
        messages = [{"role": "user", "content": require_text(row["prompt"], "prompt")}]
    completion = row["completion"]
    if isinstance(completion, list):
        answer = _message_list(completion, "completion")
        if len(answer) != 1 or answer[0]["role"] != "assistant":
            raise RowProblem("completion", "expected one assistant message: [{\"role\": \"assistant\", ...}]")
        completion = answer[0]["content"]
    return messages, require_text(completion, "completion")


def _from_instruction(row: dict[str, Any]) -> tuple[list[Message], str]:
    instruction = require_text(row["instruction"], "instruction")
    extra = row.get("input")
    if not _absent(extra) and not isinstance(extra, str):
        raise RowProblem("input", f"expected text, got {describe(extra)}")
    user = f"{instruction}\n\n{extra}" if isinstance(extra, str) and extra.strip() else instruction
    name = "output" if "output" in row or "answer" not in row else "answer"
    return [{"role": "user", "content": user}], require_text(row[name], name)


def _from_messages(row: dict[str, Any]) -> tuple[list[Message], str]:
    turns = _fold_system(_message_list(row["messages"], "messages"), "messages")
    if len(turns) < 2 or turns[-1]["role"] != "assistant":
        raise RowProblem("messages", "must end with the assistant's answer (the completion to learn), after at "
                                      "least one user message")
    return _prompt_turns(turns[:-1], "messages"), turns[-1]["content"]


_READERS = {"messages": _from_messages, "prompt/completion": _from_prompt_completion,
            "instruction/input/output": _from_instruction,
            "text": lambda row: ([], require_text(row["text"], "text"))}
_REQUIRED = {"messages": (("messages",),), "prompt/completion": (("prompt",), ("completion",)),
             "instruction/input/output": (("instruction",), ("output", "answer")), "text": (("text",),)}


def _label(row: dict[str, Any], name: str) -> str:
    """An optional ``task`` or ``id``: text or a whole number, '' when absent."""
    value = row.get(name)
    if _absent(value):
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise RowProblem(name, f"expected text, got {describe(value)}")
    return value.strip()


def _example(row: dict[str, Any], shape: str, limits: ImportLimits) -> Example:
    """Check one row of a known shape and build its example; the first problem is raised as RowProblem."""
    for name, value in row.items():
        if (size := text_length(value)) > limits.max_field_chars:
            raise RowProblem(str(name), f"{size:,} characters, over the {limits.max_field_chars:,} limit (a huge "
                                         f"field: is the file broken?)")
    for names in _REQUIRED[shape]:
        if not any(name in row for name in names):
            raise RowProblem(names[0], f"missing: a {shape} row needs {' and '.join(n[0] for n in _REQUIRED[shape])}")
    messages, completion = _READERS[shape](row)
    return Example(messages=messages, completion=completion, task=_label(row, "task"), id=_label(row, "id"))


# ---------------------------------------------------------------------------------------------- the whole file


def _examples(rows: Iterator[tuple[int, Any]], problems: Problems,
              limits: ImportLimits) -> tuple[str | None, list[Example]]:
    """(the file's shape, its examples); bad rows go to ``problems``.

    The first row with a known shape sets the file's shape. Rows in no known shape before it are held back: if no
    row has a shape, the file gets one error naming its columns instead of one per row."""
    shape, examples, unshaped, columns = None, [], [], []
    for number, row in rows:
        if not isinstance(row, dict):
            problems.add(number, "", f"expected an object with named fields, got {describe(row)}")
            continue
        columns = columns or [str(key) for key in row]
        row_shape = _shape_of(row)
        if row_shape is None:
            if shape is None:
                unshaped.append(number)
            else:
                problems.add(number, "", f"has none of the columns {_EXPECTED}")
            continue
        if shape is None:
            shape = row_shape
            for held in unshaped:
                problems.add(held, "", f"has none of the columns {_EXPECTED}")
        if row_shape != shape:
            problems.add(number, "", f"is a {row_shape} row, but the file's first rows are {shape}: use one shape "
                                     f"per file")
            continue
        try:
            examples.append(_example(row, shape, limits))
        except RowProblem as problem:
            problems.add(number, problem.field, problem.reason)
    if shape is None and unshaped:
        problems.add(None, "", f"no column says what the rows hold (the columns are: {', '.join(columns)}); expected "
                               f"{_EXPECTED}")
    return shape, examples


def report(name: str, errors: list[RowError], count: int) -> str:
    """The per-row report of a refused file (the first errors in full, the rest counted)."""
    lines = [f"{name} can't be used: {count} problem{'s' if count != 1 else ''} (a dataset is checked whole: fix "
             f"{'them' if count != 1 else 'it'} and try again):"]
    lines += [f"- {error}" for error in sorted(errors, key=lambda e: e.row or 0)]
    if count > len(errors):
        lines.append(f"… and {count - len(errors)} more.")
    return "\n".join(lines)


def _load(path: Path, limits: ImportLimits | None) -> tuple[str, list[Example]]:
    """(shape, examples) of a file, or DatasetError with every problem found."""
    path, limits = Path(path), limits or ImportLimits()
    problems = Problems(min(limits.max_errors, MAX_LISTED))
    shape, examples = None, []
    try:
        shape, examples = _examples(read_rows(path, limits, problems), problems, limits)
    except FileProblem as problem:
        problems.add(problem.row, problem.field, problem.reason, problem.unit)
    if not problems.count and not examples:
        problems.add(None, "", "no rows: the file holds no data (only a header or blank lines?)")
    if problems.count:
        raise DatasetError(report(path.name, problems.kept, problems.count), problems.kept, problems.count)
    return shape or "text", examples


def load_examples(path: Path, limits: ImportLimits | None = None) -> list[Example]:
    """Every example of a dataset file, or :class:`DatasetError` listing every bad row (nothing is returned then)."""
    return _load(path, limits)[1]


# ---------------------------------------------------------------------------------------------- names and files


def _uploaded(folder: Path | None) -> list[Path]:
    """Dataset files in the datasets folder (hidden and temporary files left out), by name."""
    return listed_files(folder, EXTENSIONS)


def _describe(path: Path) -> tuple[int, str]:
    """(rows, shape) of a listed file, without checking every row (that happens when it is used)."""
    count, shape = 0, None
    try:
        for _, row in read_rows(path, ImportLimits(), Problems(1)):
            count += 1
            shape = shape or (_shape_of(row) if isinstance(row, dict) else None)
    except (FileProblem, OSError):
        return 0, "unknown"
    return count, shape or "unknown"


def list_datasets(settings: Settings | None) -> list[DatasetInfo]:
    """The bundled datasets that are present, then the uploaded ones (reads each file once: fine for a tab open)."""
    infos = []
    for name, path in BUNDLED.items():
        if path.is_file():
            purpose = "evaluation" if name in EVALUATION_ONLY else "training"
            infos.append(DatasetInfo(name, path, *_describe(path), "bundled", purpose))
    for path in _uploaded(settings.datasets_dir if settings else None):
        infos.append(DatasetInfo(path.stem, path, *_describe(path), "uploaded", "training"))
    return infos


def is_evaluation_only(path: Path) -> bool:
    """Whether ``path`` is a held-out set that training must not see."""
    return any(Path(path).resolve() == BUNDLED[name].resolve() for name in EVALUATION_ONLY)


def resolve(name_or_path: str, settings: Settings | None, *, for_training: bool = False) -> Path:
    """The file for a bundled name, an uploaded dataset's name (or file name), or a path to a dataset file.

    With ``for_training`` the held-out evaluation sets are refused: training on them would make the unseen-task
    score meaningless."""
    text = (name_or_path or "").strip()
    uploaded = _uploaded(settings.datasets_dir if settings else None)
    path = BUNDLED.get(text) or next((p for p in uploaded if text in (p.stem, p.name)), None)
    if path is None and text and Path(text).expanduser().is_file():
        path = Path(text).expanduser().resolve()
    if path is None or not path.is_file():
        known = [info.name for info in list_datasets(settings)] or list(BUNDLED)
        raise DatasetError(f"No dataset {text!r}: choose one of {', '.join(known)}, or give the path of a "
                           f"{', '.join(EXTENSIONS)} file." if text else "Choose a dataset.")
    if for_training and is_evaluation_only(path):
        raise DatasetError(f"{text!r} is held-out evaluation data (tasks kept out of training, to measure how "
                           f"instruction tuning generalizes): train on 'instructions' or your own upload instead.")
    return path


def safe_name(raw: str, suffix: str = "") -> str:
    """A file-name stem from a user's text: letters, digits, - _ . only; never hidden, never a path."""
    text = raw.strip()
    if suffix and text.lower().endswith(suffix.lower()):
        text = text[: -len(suffix)]
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-_")
    return text[:MAX_NAME_CHARS].rstrip(".-_") or "dataset"


def save_upload(source: Path, settings: Settings, name: str | None = None) -> DatasetInfo:
    """Check an uploaded file whole, then copy it into ``settings.datasets_dir`` under a safe, unused name.

    Raises :class:`DatasetError` (and writes nothing) when any row is bad. The copy goes to a hidden temporary
    name first and is renamed, so the folder never holds half a file."""
    source = Path(source)
    shape, examples = _load(source, None)
    folder = settings.datasets_dir
    suffix = source.suffix.lower()
    stem = safe_name(name or source.stem, suffix)
    taken = set(BUNDLED) | {p.stem for p in _uploaded(folder)}  # a bundled name stays the bundled set's
    names = numbered_names(stem, suffix, taken)
    final = publish_unique(folder, lambda temporary: shutil.copyfile(source, temporary), names)
    if final is None:
        raise DatasetError(f"Too many datasets are called {stem!r}: choose another name.")
    if final.resolve().parent != folder.resolve():  # safe_name makes this impossible; keep the promise explicit
        final.unlink(missing_ok=True)
        raise DatasetError(f"Refused to save outside {folder}.")
    return DatasetInfo(final.stem, final, len(examples), shape, "uploaded", "training")


# ---------------------------------------------------------------------------------------------- preview


def short(text: str, limit: int = PREVIEW_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def preview_table(examples: list[Example], rows: int = 20) -> pd.DataFrame:
    """The first ``rows`` examples as task, prompt (the last user turn) and completion, each shortened."""
    return pd.DataFrame(
        [(e.task, short(e.messages[-1]["content"]) if e.messages else "", short(e.completion))
         for e in examples[:rows]], columns=["task", "prompt", "completion"])


def preview(path: Path, rows: int = 20) -> pd.DataFrame:
    """The first ``rows`` examples of a dataset file (checked whole first: a bad file raises DatasetError)."""
    return preview_table(load_examples(path), rows)


def task_counts(examples: list[Example]) -> pd.DataFrame:
    """Examples per task family, most first (no task = "(none)")."""
    counts = pd.Series([e.task or "(none)" for e in examples], dtype="object").value_counts()
    frame = counts.rename_axis("task").reset_index(name="examples")
    return frame.sort_values(["examples", "task"], ascending=[False, True], ignore_index=True)
