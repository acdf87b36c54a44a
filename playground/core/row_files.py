"""Uploaded data files (JSONL, JSON, CSV, Parquet) read into numbered rows, refusing what can't be read with a reason.

Shared by every upload that reports problems per row: the checks here are about the *file* (extension, size,
emptiness, encoding, JSON syntax, ragged CSV rows, required columns); what a row must contain is up to the caller,
with the checks every importer shares (text, TRL message lists) and their wording (``counted``). Plain text files
(one item per line) get the same file checks through :func:`read_lines`. Rows are numbered as the user counts them: the line for JSON lines, the 1-based data row otherwise (the CSV header
is not a data row). Text must be UTF-8; a UTF-8 byte-order mark (Excel's "CSV UTF-8") is accepted, UTF-16 is
refused with "save it as UTF-8".
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

EXTENSIONS: dict[str, str] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv",
                              ".parquet": "parquet"}

ColumnCheck = Callable[[list[str]], None]


@dataclass(frozen=True)
class ImportLimits:
    """What an import refuses, with a message, before it reads further."""

    max_bytes: int = 200 * 2**20
    """Larger files are refused whole (split them)."""
    max_field_chars: int = 100_000
    """A field longer than this makes its row an error (a "huge row"): usually a broken file."""
    max_errors: int = 50
    """Errors listed in the report; the rest are counted."""


@dataclass(frozen=True)
class RowError:
    """One problem: where (``row`` None = the whole file), which field ('' = the whole row), and why."""

    row: int | None
    field: str
    reason: str
    unit: str = "row"
    """``line`` for JSONL (and bytes that aren't UTF-8), ``row`` = 1-based data row otherwise."""

    def __str__(self) -> str:
        where = [f"{self.unit} {self.row}"] if self.row is not None else []
        where += [f"field '{self.field}'"] if self.field else []
        return f"{', '.join(where)}: {self.reason}" if where else self.reason


class Problems:
    """Collects errors: keeps the first ``limit`` in full, counts the rest."""

    def __init__(self, limit: int, unit: str = "row") -> None:
        self.limit, self.unit, self.kept, self.count = limit, unit, [], 0

    def add(self, row: int | None, field_name: str, reason: str, unit: str | None = None) -> None:
        self.count += 1
        if len(self.kept) < self.limit:
            self.kept.append(RowError(row, field_name, reason, unit or self.unit))


class FileProblem(Exception):
    """The whole file is refused (with an optional place and field)."""

    def __init__(self, reason: str, row: int | None = None, unit: str = "line", field_name: str = "") -> None:
        super().__init__(reason)
        self.reason, self.row, self.unit, self.field = reason, row, unit, field_name


def _decode(data: bytes) -> str:
    """UTF-8 (a leading BOM, as Excel writes, is dropped); UTF-16 and undecodable bytes are refused."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise FileProblem("the file is UTF-16 (it starts with a UTF-16 byte-order mark): save it as UTF-8 "
                           "(in Excel: Save As → CSV UTF-8)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise FileProblem(f"byte {data[error.start]:#04x} is not UTF-8 text: save the file as UTF-8", line) \
            from error


TOO_DEEP = "not usable JSON: its lists or objects are nested too deeply (hundreds of levels or more)"


def json_error_text(error: json.JSONDecodeError) -> str:
    """``not valid JSON (<why> at column <n>)``. Some of the json module's messages already end with "at"
    ("Unterminated string starting at"), so the column is added without a second "at"."""
    message = error.msg.removesuffix(" at")
    return f"not valid JSON ({message} at column {error.colno})"


def _jsonl(text: str, problems: Problems) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as error:
            problems.add(number, "", json_error_text(error))
        except RecursionError:  # the json module recurses once per level of [ or {: about a thousand overflow
            problems.add(number, "", TOO_DEEP)


def _json(text: str, problems: Problems) -> Iterator[tuple[int, Any]]:
    """A JSON array of objects (rows numbered from 1), or JSON lines saved as .json."""
    if not text.lstrip().startswith("["):
        problems.unit = "line"
        yield from _jsonl(text, problems)
        return
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as error:
        raise FileProblem(json_error_text(error), error.lineno) from error
    except RecursionError as error:
        raise FileProblem(TOO_DEEP, 1) from error
    yield from enumerate(rows, 1)


def _csv(text: str, problems: Problems, check_columns: ColumnCheck) -> Iterator[tuple[int, Any]]:
    """CSV with a header row; data rows numbered from 1; ragged rows are errors, blank lines are skipped."""
    reader = csv.reader(io.StringIO(text, newline=""))
    number = 0
    try:
        header = [name.strip() for name in next(reader, [])]
        if len(set(header)) < len(header):
            raise FileProblem(f"the header names a column twice: {', '.join(header)}", 1)
        check_columns(header)
        for cells in reader:
            if not cells:
                continue
            number += 1
            if len(cells) != len(header):
                problems.add(number, "", f"has {len(cells)} fields but the header has {len(header)} (a missing or "
                             f"extra comma, or an unclosed quote?)")
                continue
            yield number, dict(zip(header, cells))
    except csv.Error as error:
        huge = "larger than field limit" in str(error)
        problems.add(number + 1, "", f"a field is over {csv.field_size_limit():,} characters (a huge row: is the "
                     f"file broken?)" if huge else f"unreadable CSV ({error})")


def _parquet(path: Path, check_columns: ColumnCheck) -> Iterator[tuple[int, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise FileProblem(f"not a Parquet file ({error})") from error
    check_columns(table.column_names)
    yield from enumerate(table.to_pylist(), 1)


def _column_check(required: Sequence[str], expected: str) -> ColumnCheck:
    """CSV and Parquet name their columns up front: a missing one is one file-level error, not one per row."""
    def check(columns: list[str]) -> None:
        for name in required:
            if name not in columns:
                raise FileProblem(f"no '{name}' column (the columns are: {', '.join(columns) or 'none'})"
                                  + (f"; expected {expected}" if expected else ""), field_name=name)
    return check


def _kind_of(path: Path, limits: ImportLimits) -> str:
    """The reader for ``path``, or a FileProblem for a file that can't be read at all."""
    kind = EXTENSIONS.get(path.suffix.lower())
    if kind is None:
        raise FileProblem(f"can't import '{path.suffix or path.name}' files: use "
                          f"{', '.join(EXTENSIONS)} (UTF-8 text or Parquet)")
    _check_file(path, limits)
    return kind


def _check_file(path: Path, limits: ImportLimits) -> None:
    """A FileProblem for a file that is missing, empty or over the size limit."""
    if not path.is_file():
        raise FileProblem(f"{path} does not exist")
    size = path.stat().st_size
    if size == 0:
        raise FileProblem("the file is empty")
    if size > limits.max_bytes:
        raise FileProblem(f"the file is {size / 2**20:.1f} MB, over the {limits.max_bytes / 2**20:.0f} MB import "
                          f"limit: split it into smaller files")


def read_rows(path: Path, limits: ImportLimits, problems: Problems, required: Sequence[str] = (),
              expected: str = "") -> Iterator[tuple[int, Any]]:
    """(row number, row) for every row of ``path``; rows that can't be read go to ``problems``.

    Raises :class:`FileProblem` for a file that can't be read at all (extension, size, empty, encoding, not
    Parquet, a required column missing from the CSV header or Parquet schema; ``expected`` says what the columns
    should be). Sets ``problems.unit`` to ``line`` for JSON lines. Rows are whatever the file holds (usually dicts;
    CSV cells are strings, empty cells ``""``): checking them is the caller's job.
    """
    kind = _kind_of(path, limits)
    problems.unit = "line" if kind == "jsonl" else "row"
    check_columns = _column_check(required, expected)
    if kind == "parquet":
        return _parquet(path, check_columns)
    text = _decode(path.read_bytes())
    if kind == "csv":
        return _csv(text, problems, check_columns)
    return _jsonl(text, problems) if kind == "jsonl" else _json(text, problems)


def read_lines(path: Path, limits: ImportLimits) -> Iterator[tuple[int, str]]:
    """(line number, line) for every non-blank line of a plain text file (one item per line, e.g. prompts), with
    the same file checks as :func:`read_rows` (missing, empty, size, UTF-8). Raises :class:`FileProblem`."""
    _check_file(path, limits)
    text = _decode(path.read_bytes())
    return ((number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip())


# ---------------------------------------------------------------------------------------------- checking one row


class RowProblem(Exception):
    """One row is refused: the field ('' = the whole row) and the reason. Raised while checking a row; the
    caller records it and goes on to the next row, so one report lists every bad row."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(reason)
        self.field, self.reason = field_name, reason


def describe(value: Any) -> str:
    """What a value is, in words for an error message ("a number", "a list", "nothing (null)")."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    return {dict: "an object {…}", list: "a list", str: "text", bytes: "binary data"}.get(type(value),
                                                                                      "something else")


def require_text(value: Any, name: str, allow_empty: bool = False) -> str:
    """``value`` if it is text (non-blank unless ``allow_empty``); otherwise a :class:`RowProblem` for ``name``."""
    if not isinstance(value, str):
        raise RowProblem(name, f"expected text, got {describe(value)}")
    if not allow_empty and not value.strip():
        raise RowProblem(name, "is empty")
    return value


def message_list(value: list[Any], name: str) -> tuple[str, list[dict[str, str]]]:
    """(system text, the other messages) from a TRL conversational message list: every item must be
    ``{"role": "system"|"user"|"assistant", "content": text}``; leading system messages become the system text
    (joined by a blank line), a later one stays in the list for the caller's turn check to refuse."""
    system, messages = [], []
    for index, item in enumerate(value, 1):
        if not isinstance(item, dict) or not isinstance(item.get("content"), str) \
                or item.get("role") not in ("system", "user", "assistant"):
            raise RowProblem(name, f"message {index} should be {{\"role\": \"user\"|\"assistant\"|\"system\", "
                                    f"\"content\": text}}, got {describe(item) if not isinstance(item, dict) else item}")
        if item["role"] == "system" and not messages:
            system.append(item["content"])
        else:
            messages.append({"role": item["role"], "content": item["content"]})
    return "\n\n".join(system), messages


def counted(number: int, singular: str, plural: str = "") -> str:
    """``1 comparison``, ``2 comparisons``, ``0 comparisons`` (``plural`` when adding "s" is wrong). Written here
    rather than with an inflection library: the app's summaries need a handful of nouns, each named at its call."""
    return f"{number:,} {singular if number == 1 else plural or singular + 's'}"


def text_length(value: Any) -> int:
    """Characters of text in a field, nested message lists included (for the huge-row limit)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(text_length(v) for v in value.values())
    return sum(text_length(v) for v in value) if isinstance(value, list) else 0

