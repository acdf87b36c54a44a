"""Preference import: JSONL / JSON / CSV / Parquet preference files become comparisons, checked row by row, all or
nothing.

Accepted rows (the layouts TRL and Anthropic HH use):

* ``prompt`` + ``chosen`` + ``rejected``: strings, or TRL conversational message lists (``prompt`` may start with a
  system message; ``chosen`` / ``rejected`` hold one assistant message). A string prompt in the HH layout
  (``"\\n\\nHuman: …\\n\\nAssistant:"``, what our text export writes) is read back into messages.
* ``chosen`` + ``rejected`` only: full HH transcripts (or full message lists); everything before the last
  ``Assistant:`` turn must be the same in both, and is the prompt.
* optional ``id``, ``system`` / ``system_prompt``, ``strength`` (1–5) or ``margin`` (≥ 0, read back as
  ``strength = round(margin * 5)``, clamped to 1–5; 0 means none), ``model_chosen`` / ``model_rejected``
  (``model`` or ``model + adapter``).

Every row becomes a comparison with source ``import``, winner ``a``: side a is the chosen answer, side b the
rejected one. A pair whose chosen answer equals its rejected one (ignoring spaces at the ends) is a bad row: it
carries no preference. The whole file is checked before anything is written; any problem (reported by line for
JSONL, by 1-based data row otherwise, with the field and the reason) means nothing is written.

Without an ``id`` column the id is a hash of the row's content. A row that repeats an earlier one (same id, same
content) is skipped and counted, and so is a row the ratings database already holds (same id, same prompt and
answers): importing the same file again adds nothing and says so. The same id for a *different* comparison is a bad
row.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

from playground.core.row_files import (
    FileProblem,
    ImportLimits,
    Problems,
    RowError,
    RowProblem,
    counted,
    describe,
    message_list,
    read_rows,
    require_text,
    text_length,
)
from playground.models.prompting import PromptError, validate_messages
from playground.ratings.export import Message, strength_for
from playground.ratings.store import ComparisonRecord, Side, Store, StoreError, now

__all__ = ["ImportLimits", "ImportResult", "PreferenceFile", "PreferenceRow", "RowError", "import_file",
           "parse_transcript", "preference_key", "read_file", "read_preferences"]

MAX_ID_CHARS = 200
_EXPECTED = "prompt, chosen, rejected — or chosen, rejected as whole HH transcripts"
_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):[ \t]?")


@dataclass(frozen=True)
class ImportResult:
    """The comparisons read from a file (none when anything is wrong), the problems found, what was skipped and how
    many were saved."""

    path: Path
    records: list[ComparisonRecord] = field(default_factory=list)
    """The comparisons to save (repeats left out); after :func:`import_file`, the ones it saved."""
    row_numbers: list[int] = field(default_factory=list)
    """Where each record came from (lines for JSONL, data rows otherwise)."""
    errors: list[RowError] = field(default_factory=list)
    """The first ``max_errors`` problems."""
    error_count: int = 0
    written: int = 0
    unit: str = "row"
    repeated: int = 0
    """Rows skipped because they repeat an earlier row of the file (same id, same content)."""
    already_stored: int = 0
    """Rows skipped because the ratings database already holds them (set by :func:`import_file`)."""
    already_deleted: int = 0
    """How many of ``already_stored`` are deleted in History."""
    imported: bool = False
    """Whether :func:`import_file` saved the file (False: only read by :func:`read_preferences`)."""

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def summary(self) -> str:
        """What happened, and for a refused file the problems one per line (all or nothing: fix and retry)."""
        name = self.path.name
        if self.ok:
            repeated = f"{counted(self.repeated, 'repeated row')} skipped" if self.repeated else ""
            if not self.imported:
                count = len(self.records)
                ready = f"{counted(count, 'comparison')} in {name} {_is(count)} ready to import"
                return f"{ready} ({repeated})." if repeated else f"{ready}."
            deleted = f", {self.already_deleted} of them deleted in History" if self.already_deleted else ""
            if not self.written:
                held = self.already_stored
                parts = [f"its {counted(held, 'comparison')} {_is(held)} already in the ratings database "
                         f"(imported before?)"]
                parts += [f"{self.already_deleted} of them deleted in History"] if self.already_deleted else []
                return f"Nothing new to import from {name}: {'; '.join(parts + ([repeated] if repeated else []))}."
            skipped = [repeated] if repeated else []
            if self.already_stored:
                skipped.append(f"{self.already_stored} already in the ratings database{deleted}")
            return (f"Imported {counted(self.written, 'comparison')} from {name}"
                    + (f" ({'; '.join(skipped)})." if skipped else "."))
        return PreferenceFile(self.path, errors=self.errors, error_count=self.error_count).refusal()


# ---------------------------------------------------------------------------------------------- checking rows


@dataclass(frozen=True)
class PreferenceRow:
    """One valid row of a preference file: the prompt and both answers (chosen first), as the file says them."""

    id: str | None
    messages: list[Message]
    system: str
    chosen: str
    rejected: str
    strength: int | None = None
    model_chosen: str | None = None
    model_rejected: str | None = None

    def key(self) -> tuple[Any, ...]:
        """What the row says, for spotting the same preference under other ids (see :func:`preference_key`)."""
        return _key(self.system, self.messages, self.chosen, self.rejected)


@dataclass(frozen=True)
class PreferenceFile:
    """A preference file read and checked whole: its rows (repeats left out) and where each came from, or the
    problems found (then no rows: a file is used all or nothing)."""

    path: Path
    rows: list[PreferenceRow] = field(default_factory=list)
    row_numbers: list[int] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    """The first ``max_errors`` problems."""
    error_count: int = 0
    unit: str = "row"
    repeated: int = 0
    """Rows skipped because they repeat an earlier row of the file (same id, same content)."""

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def refusal(self) -> str:
        """The problems, one per line, under a line saying nothing was taken."""
        lines = [f"Nothing was imported: {self.path.name} has {counted(self.error_count, 'problem')} (a file is "
                 f"imported all or nothing; fix it and retry):"]
        lines += [f"- {error}" for error in self.errors]
        if self.error_count > len(self.errors):
            lines.append(f"… and {self.error_count - len(self.errors)} more.")
        return "\n".join(lines)


def _is(number: int) -> str:
    return "is" if number == 1 else "are"


def parse_transcript(text: str) -> tuple[str, list[Message]]:
    """An HH transcript (``"\\n\\nHuman: …\\n\\nAssistant: …"``) as (preamble used as system prompt, messages)."""
    pieces = _TURN.split(text)
    turns = [{"role": "user" if speaker == "Human" else "assistant", "content": content.strip()}
             for speaker, content in zip(pieces[1::2], pieces[2::2])]
    return pieces[0].strip(), turns


def _conversation(value: Any, name: str) -> tuple[str, list[Message]]:
    """A prompt or full transcript (text or message list) as (system, messages)."""
    if isinstance(value, list):
        return message_list(value, name)
    text = require_text(value, name)
    if _TURN.search(text):
        return parse_transcript(text)
    return "", [{"role": "user", "content": text}]


def _prompt(value: Any) -> tuple[str, list[Message], bool]:
    """(system, messages ending with the user's turn, whether it was HH text) from a ``prompt`` field."""
    system, messages = _conversation(value, "prompt")
    is_hh = isinstance(value, str) and bool(_TURN.search(value))
    if is_hh and messages and messages[-1]["role"] == "assistant" and not messages[-1]["content"]:
        messages = messages[:-1]  # the open "Assistant:" the answers continue
    return system, messages, is_hh


def _answer(value: Any, name: str, after_hh: bool) -> str:
    """An answer: text, or a list holding one assistant message."""
    if isinstance(value, list):
        _, messages = message_list(value, name)
        if len(messages) != 1 or messages[0]["role"] != "assistant":
            raise RowProblem(name, "expected one assistant message, e.g. [{\"role\": \"assistant\", \"content\": …}]")
        value = messages[0]["content"]
    text = require_text(value, name)
    return text.removeprefix(" ") if after_hh else text


def _split_last(value: Any, name: str) -> tuple[str, list[Message], str]:
    """A full transcript as (system, prompt messages, last assistant answer)."""
    system, messages = _conversation(value, name)
    if len(messages) < 2 or messages[-1]["role"] != "assistant":
        raise RowProblem(name, "without a prompt column this must be a whole conversation ending with the "
                                "answer (\"\\n\\nHuman: …\\n\\nAssistant: …\", or a message list)")
    return system, messages[:-1], require_text(messages[-1]["content"], name)


def _exchange(values: dict[str, Any]) -> tuple[str, list[Message], str, str]:
    """(system, prompt messages, chosen answer, rejected answer), with an explicit prompt or from whole transcripts."""
    if "prompt" in values:
        system, messages, is_hh = _prompt(values["prompt"])
        return (system, messages, _answer(values["chosen"], "chosen", is_hh),
                _answer(values["rejected"], "rejected", is_hh))
    system, messages, chosen = _split_last(values["chosen"], "chosen")
    other_system, other_messages, rejected = _split_last(values["rejected"], "rejected")
    if (system, messages) != (other_system, other_messages):
        raise RowProblem("rejected", "differs from 'chosen' before the last Assistant turn (with no prompt column, "
                                      "that shared part is the prompt)")
    return system, messages, chosen, rejected


def _present(value: Any) -> Any:
    """None for an absent optional value: missing, null, an empty CSV cell or a NaN from pandas."""
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _number(value: Any, name: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise RowProblem(name, f"expected a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RowProblem(name, f"expected a number, got {describe(value)}")
    if not math.isfinite(value):
        raise RowProblem(name, f"expected a finite number, got {value}")
    return float(value)


def _strength(values: dict[str, Any]) -> int | None:
    """``strength`` (1–5) if given, else from ``margin`` (see :func:`playground.ratings.export.strength_for`)."""
    if (value := _present(values.get("strength"))) is not None:
        number = _number(value, "strength")
        if number not in (1, 2, 3, 4, 5):
            raise RowProblem("strength", f"must be a whole number from 1 to 5, got {value!r}")
        return int(number)
    if (value := _present(values.get("margin"))) is None:
        return None
    margin = _number(value, "margin")
    if margin < 0:
        raise RowProblem("margin", f"must be 0 or more (chosen is the better answer), got {value!r}")
    return strength_for(margin)


def _optional_text(values: dict[str, Any], *names: str) -> str | None:
    for name in names:
        if (value := _present(values.get(name))) is not None:
            return require_text(value, name, allow_empty=True)
    return None


def _row_id(values: dict[str, Any]) -> str | None:
    value = _present(values.get("id"))
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    text = require_text(value, "id").strip()
    if len(text) > MAX_ID_CHARS:
        raise RowProblem("id", f"is {len(text)} characters long; ids are at most {MAX_ID_CHARS}")
    return text


def _parse_row(values: Any, limits: ImportLimits) -> PreferenceRow:
    """Check one row and return its pair; the first problem is raised as RowProblem(field, reason)."""
    if not isinstance(values, dict):
        raise RowProblem("", f"expected an object with prompt/chosen/rejected fields, got {describe(values)}")
    for name, value in values.items():
        if (size := text_length(value)) > limits.max_field_chars:
            raise RowProblem(str(name), f"{size:,} characters, over the {limits.max_field_chars:,} limit (a huge "
                                         f"row: is the file broken?)")
    for name in ("chosen", "rejected"):
        if name not in values:
            raise RowProblem(name, "missing: each row needs 'chosen' and 'rejected' (and 'prompt', unless they "
                                    "are whole HH transcripts)")
    system, messages, chosen, rejected = _exchange(values)
    if chosen.strip() == rejected.strip():
        raise RowProblem("rejected", "is the same answer as 'chosen' (ignoring spaces at the ends): the pair "
                                     "carries no preference")
    try:
        validate_messages(messages)
        if messages[-1]["role"] != "user":
            raise PromptError("it should end with the user's message, which the answers reply to")
    except PromptError as error:
        raise RowProblem("prompt" if "prompt" in values else "chosen", f"bad prompt: {error}") from None
    column_system = _optional_text(values, "system", "system_prompt")
    if column_system and system and column_system.strip() != system.strip():
        raise RowProblem("system", "differs from the system message inside the prompt")
    return PreferenceRow(id=_row_id(values), messages=messages, system=system or column_system or "", chosen=chosen,
                 rejected=rejected, strength=_strength(values),
                 model_chosen=_optional_text(values, "model_chosen"),
                 model_rejected=_optional_text(values, "model_rejected"))


def derived_id(pair: PreferenceRow) -> str:
    """A stable id from the row's content, for files without ids: the same row always gets the same id."""
    content = [pair.system, pair.messages, pair.chosen, pair.rejected, pair.strength, pair.model_chosen,
               pair.model_rejected]
    digest = hashlib.sha256(json.dumps(content, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()
    return f"import-{digest[:24]}"


# ---------------------------------------------------------------------------------------------- the whole file


def _parse_rows(rows: Iterator[tuple[int, Any]], limits: ImportLimits,
                problems: Problems) -> tuple[list[PreferenceRow], list[int], int]:
    """Every valid row as a pair with its id settled, where each came from, and how many rows repeated an earlier
    one (same id, same content: skipped). Invalid rows, and an id used again for different content, go to
    ``problems``."""
    pairs, numbers, seen, repeated = [], [], {}, 0
    for number, values in rows:
        try:
            pair = _parse_row(values, limits)
        except RowProblem as problem:
            problems.add(number, problem.field, problem.reason)
            continue
        content = derived_id(pair)
        pair_id = pair.id or content
        if pair_id in seen:
            first, first_content = seen[pair_id]
            if first_content == content:
                repeated += 1
            else:
                problems.add(number, "id", f"id {pair_id!r} is also used by {problems.unit} {first}, for a "
                                           f"different comparison")
            continue
        seen[pair_id] = (number, content)
        pairs.append(replace(pair, id=pair_id))
        numbers.append(number)
    return pairs, numbers, repeated


def _side(model: str | None, response: str) -> Side:
    base, _, adapter = (model or "").partition(" + ")
    return Side(model=base or None, adapter=adapter or None, response=response)


def _record(pair: PreferenceRow, rater: str, stamp: str) -> ComparisonRecord:
    return ComparisonRecord(messages=pair.messages, system_prompt=pair.system, a=_side(pair.model_chosen, pair.chosen),
                            b=_side(pair.model_rejected, pair.rejected), winner="a", strength=pair.strength,
                            rater=rater, source="import", id=pair.id or derived_id(pair), created_at=stamp,
                            voted_at=stamp)


def read_file(path: Path | str, limits: ImportLimits | None = None) -> PreferenceFile:
    """Read and check a preference file: its rows, or every problem found. Writes nothing; the import and the
    training stages' preference data both start here."""
    path, limits = Path(path), limits or ImportLimits()
    problems = Problems(limits.max_errors)
    try:
        rows = read_rows(path, limits, problems, required=("chosen", "rejected"), expected=_EXPECTED)
        pairs, numbers, repeated = _parse_rows(rows, limits, problems)
    except FileProblem as problem:
        problems.add(problem.row, problem.field, problem.reason, problem.unit)
        return PreferenceFile(path, errors=problems.kept, error_count=problems.count, unit=problems.unit)
    if not pairs and not problems.count:
        problems.add(None, "", "no rows: the file holds no data (only a header or blank lines?)")
    if problems.count:
        return PreferenceFile(path, errors=problems.kept, error_count=problems.count, unit=problems.unit)
    return PreferenceFile(path, rows=pairs, row_numbers=numbers, unit=problems.unit, repeated=repeated)


def read_preferences(path: Path | str, rater: str = "", limits: ImportLimits | None = None) -> ImportResult:
    """Read and check a preference file without writing anything: its comparisons, or every problem found."""
    checked = read_file(path, limits)
    stamp = now()
    return ImportResult(checked.path, records=[_record(p, rater, stamp) for p in checked.rows],
                        row_numbers=checked.row_numbers, errors=checked.errors, error_count=checked.error_count,
                        unit=checked.unit, repeated=checked.repeated)


def import_file(store: Store, path: Path | str, rater: str = "", limits: ImportLimits | None = None) -> ImportResult:
    """Read, check and save a preference file in one transaction: every new row, or (on any problem) none. Rows the
    ratings database already holds are skipped and counted, so importing a file again adds nothing."""
    result = read_preferences(path, rater, limits)
    if not result.ok:
        return result
    max_errors = (limits or ImportLimits()).max_errors
    for attempt in range(2):  # once more if another import saved some of these rows between the check and the write
        new = _new_to(store, result, max_errors)
        if not new.ok:
            return new
        try:
            if new.records:
                store.insert_many(new.records)
            break
        except StoreError as error:
            if attempt:
                return replace(new, records=[], row_numbers=[], errors=[RowError(None, "", str(error))],
                               error_count=1)
    if rater and new.records:
        store.add_rater(rater)
    return replace(new, written=len(new.records), imported=True)


def _key(system: str, messages: list[Message], chosen: str, rejected: str) -> tuple[Any, ...]:
    return (system.strip(), tuple((m["role"], m["content"].strip()) for m in messages), chosen.strip(),
            rejected.strip())


def preference_key(record: ComparisonRecord) -> tuple[Any, ...] | None:
    """What a comparison says (system, prompt, chosen answer, rejected answer; spaces at the ends ignored): two
    records with the same key are the same preference, whatever their ids. None for a tie or no vote."""
    if record.winner not in ("a", "b"):
        return None
    chosen, rejected = (record.a, record.b) if record.winner == "a" else (record.b, record.a)
    return _key(record.system_prompt, record.messages, chosen.response, rejected.response)


def _new_to(store: Store, result: ImportResult, max_errors: int) -> ImportResult:
    """``result`` with only the records the store lacks; those it holds with the same preference are counted as
    already stored; an id it holds for a different comparison is a problem for that row (nothing is imported)."""
    held = {r.id: r for r in store.comparisons(voted_only=False, include_deleted=True)}
    problems = Problems(max_errors, result.unit)
    records, numbers, already, deleted = [], [], 0, 0
    for record, number in zip(result.records, result.row_numbers):
        stored = held.get(record.id)
        if stored is None:
            records.append(record)
            numbers.append(number)
        elif preference_key(stored) == preference_key(record):
            already += 1
            deleted += stored.deleted_at is not None
        else:
            problems.add(number, "id", f"{record.id!r} is already in the ratings database, for a different "
                                       f"comparison (another prompt or other answers)")
    if problems.count:
        return replace(result, records=[], row_numbers=[], errors=problems.kept, error_count=problems.count)
    return replace(result, records=records, row_numbers=numbers, already_stored=already, already_deleted=deleted)
