"""Preference export: votes become TRL preference pairs, KTO unpaired rows and FastChat battles, written atomically.

Three views of the same votes, each for a different tool:

* **Preference pairs** (TRL ``RewardTrainer`` / ``DPOTrainer``): ``prompt``, ``chosen``, ``rejected``, ``margin``.
  Written twice: *conversational* (message lists; what chat models train on) and *text* (the Anthropic HH layout
  ``"\\n\\nHuman: …\\n\\nAssistant:"`` + ``" answer"``, for base models). A pair needs a winner and one prompt both
  answers reply to, so ties, both-bad votes and multi-turn pairs whose sides had different earlier turns are left
  out, and counted.
* **KTO** (``prompt``, ``completion``, ``label``): every answer on its own, good or bad. Each answer keeps its own
  conversation, so multi-turn pairs stay in; both-bad gives two bad rows; only ties are left out.
* **FastChat battles** (``model_a``, ``model_b``, ``winner`` …): the Chatbot Arena layout, read by its Elo /
  Bradley–Terry notebooks. ``model_a`` is the model the screen showed on the *left*, as in the Arena.

``export_all`` writes each as JSONL, Parquet and a ``datasets`` folder into a new timestamped folder, plus a zip of
it. Every file and folder is written under a temporary name in the same directory and renamed into place, so a
crash never leaves a half-written export under a final name.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Sequence

from playground.core.files import staged_file, staged_folder
from playground.ratings.selection import RaterKind, select
from playground.ratings.store import ComparisonRecord, Side, Store

Message = dict[str, str]

MARGIN_PER_STRENGTH = 0.2
"""``margin = strength / 5``: 0.2 (slightly better) … 1.0 (far better); no strength → 0.0.

TRL's RewardTrainer (1.16) uses a ``margin`` column as ``loss = -log σ(r_chosen - r_rejected - margin)``: the
reward model must put the winner ahead by at least about ``margin`` before the loss fades (Llama 2's reward model
did this with its rating scale). A margin of 0.0 is exactly the plain Bradley–Terry loss, so votes without a
strength get 0.0 and the column is always present: the schema stays the same from one export to the next, and
its collator, which takes the column from the first row of a batch, never meets a missing value. DPO ignores it.
"""

LEFT_OUT_LABELS: dict[str, tuple[str, str]] = {
    "tie": ("tie", "ties"),
    "both_bad": ("both-bad vote", "both-bad votes"),
    "multi_turn": ("multi-turn pair whose sides had different earlier turns",
                   "multi-turn pairs whose sides had different earlier turns"),
    "unknown_model": ("vote with no model name (imported data)", "votes with no model name (imported data)"),
}
"""Why a vote was left out of a format: reason → (singular, plural)."""

DATASETS: dict[str, str] = {
    "preference": "preference pairs (conversational)",
    "preference_text": "preference pairs (plain text)",
    "kto": "KTO rows",
    "battles": "FastChat battles",
}
"""The exported datasets: file / folder name → what it holds."""


def margin_for(strength: int | None) -> float:
    """The RewardTrainer margin for a vote strength (see :data:`MARGIN_PER_STRENGTH`)."""
    return 0.0 if strength is None else round(strength * MARGIN_PER_STRENGTH, 6)


def strength_for(margin: float) -> int | None:
    """The inverse of :func:`margin_for`, for imports: 0 → no strength; larger margins clamp to 1–5."""
    if margin <= 0:
        return None
    return min(5, max(1, round(margin / MARGIN_PER_STRENGTH)))


def model_name(side: Side) -> str | None:
    """``model`` or ``model + adapter``; None when the model is unknown (imported data)."""
    if side.model is None:
        return None
    return f"{side.model} + {side.adapter}" if side.adapter else side.model


def side_prompt(record: ComparisonRecord, side: Literal["a", "b"]) -> list[Message]:
    """The conversation one side answered: system message (if any), its earlier turns, the user's last message.

    ``Side.history``, when set, replaces the shared earlier turns (``messages[:-1]``) for that side.
    """
    own = getattr(record, side)
    earlier = own.history if own.history is not None else record.messages[:-1]
    system = [{"role": "system", "content": record.system_prompt}] if record.system_prompt else []
    return system + [dict(m) for m in earlier] + [dict(record.messages[-1])]


def hh_text(prompt: Sequence[Message]) -> str:
    """A conversation in the Anthropic HH layout, ending with an open ``Assistant:`` turn.

    A system message becomes the preamble before the first ``Human:`` turn (the importer reads it back as such).
    """
    parts = []
    for message in prompt:
        if message["role"] == "system":
            parts.append(message["content"])
        else:
            speaker = "Human" if message["role"] == "user" else "Assistant"
            parts.append(f"\n\n{speaker}: {message['content']}")
    return "".join(parts) + "\n\nAssistant:"


@dataclass(frozen=True)
class ExportRows:
    """Rows of one export format, and how many votes were left out of it, by reason (keys of LEFT_OUT_LABELS)."""

    rows: list[dict[str, Any]]
    left_out: dict[str, int] = field(default_factory=dict)

    def left_out_text(self) -> str:
        """``2 ties, 1 both-bad vote…`` or ``nothing``."""
        parts = [f"{n} {LEFT_OUT_LABELS[reason][n != 1]}" for reason, n in self.left_out.items() if n]
        return ", ".join(parts) if parts else "nothing"


def _answer(text: str, conversational: bool) -> Any:
    return [{"role": "assistant", "content": text}] if conversational else " " + text


def _count(left_out: dict[str, int], reason: str) -> None:
    left_out[reason] = left_out.get(reason, 0) + 1


def preference_rows(records: Iterable[ComparisonRecord], conversational: bool = True) -> ExportRows:
    """TRL preference pairs (explicit prompt): winner's answer chosen, loser's rejected, strength as ``margin``.

    Conversational rows hold message lists (system message first when set); text rows hold HH-layout strings.
    Ties, both-bad and multi-turn pairs with different earlier turns per side are left out and counted.
    """
    rows, left_out = [], {"tie": 0, "both_bad": 0, "multi_turn": 0}
    for record in records:
        if record.winner in ("tie", "both_bad"):
            _count(left_out, record.winner)
            continue
        prompt = side_prompt(record, "a")
        if prompt != side_prompt(record, "b"):
            _count(left_out, "multi_turn")
            continue
        chosen, rejected = (record.a, record.b) if record.winner == "a" else (record.b, record.a)
        rows.append({
            "id": record.id,
            "prompt": prompt if conversational else hh_text(prompt),
            "chosen": _answer(chosen.response, conversational),
            "rejected": _answer(rejected.response, conversational),
            "margin": margin_for(record.strength),
            "model_chosen": model_name(chosen),
            "model_rejected": model_name(rejected),
        })
    return ExportRows(rows, left_out)


def kto_rows(records: Iterable[ComparisonRecord], conversational: bool = True) -> ExportRows:
    """KTO unpaired rows: the winner's answer labelled True, the loser's False; both-bad gives two False rows.

    Ties say nothing about either answer on its own, so they are left out and counted.
    """
    rows, left_out = [], {"tie": 0}
    for record in records:
        if record.winner == "tie":
            _count(left_out, "tie")
            continue
        for side in ("a", "b"):
            prompt = side_prompt(record, side)
            rows.append({
                "prompt": prompt if conversational else hh_text(prompt),
                "completion": _answer(getattr(record, side).response, conversational),
                "label": record.winner == side,
            })
    return ExportRows(rows, left_out)


_FASTCHAT_WINNER = {"tie": "tie", "both_bad": "tie (bothbad)"}


def question_id(record: ComparisonRecord) -> str:
    """A stable id of the prompt (system prompt + shared messages): battles on the same question share it."""
    payload = json.dumps([record.system_prompt, record.messages], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def _timestamp(record: ComparisonRecord) -> float:
    return datetime.fromisoformat(record.voted_at or record.created_at).timestamp()


def battle_rows(records: Iterable[ComparisonRecord]) -> ExportRows:
    """FastChat ``clean_battle`` rows; ``model_a`` is the model shown on the left, as in Chatbot Arena.

    Votes with no model name on a side (imported preference data) can't rank models and are left out.
    """
    rows, left_out = [], {"unknown_model": 0}
    for record in records:
        left, right = ("a", "b") if record.left_side == "a" else ("b", "a")
        model_a, model_b = model_name(getattr(record, left)), model_name(getattr(record, right))
        if model_a is None or model_b is None:
            _count(left_out, "unknown_model")
            continue
        winner = _FASTCHAT_WINNER.get(record.winner or "") or ("model_a" if record.winner == left else "model_b")
        conversations = [side_prompt(record, s) + [{"role": "assistant", "content": getattr(record, s).response}]
                         for s in (left, right)]
        rows.append({
            "question_id": question_id(record),
            "model_a": model_a,
            "model_b": model_b,
            "winner": winner,
            "judge": record.rater,
            "conversation_a": conversations[0],
            "conversation_b": conversations[1],
            "turn": sum(m["role"] == "user" for m in conversations[0]),
            "anony": record.blind,
            "tstamp": _timestamp(record),
        })
    return ExportRows(rows, left_out)


def all_rows(records: Sequence[ComparisonRecord]) -> dict[str, ExportRows]:
    """Every export format (keys of :data:`DATASETS`) for the same votes."""
    return {
        "preference": preference_rows(records, conversational=True),
        "preference_text": preference_rows(records, conversational=False),
        "kto": kto_rows(records),
        "battles": battle_rows(records),
    }


# ---------------------------------------------------------------------------------------------- writing


def write_dataset(rows: list[dict[str, Any]], folder: Path, name: str) -> list[Path]:
    """Write rows as ``name.jsonl``, ``name.parquet`` and a ``name/`` datasets folder (each staged, then renamed)."""
    from datasets import Dataset  # heavy import; only exporting needs it

    dataset = Dataset.from_list(rows)
    targets = [folder / f"{name}.jsonl", folder / f"{name}.parquet", folder / name]
    writers: list[Callable[[Path], Any]] = [
        lambda p: dataset.to_json(p, lines=True, force_ascii=False),
        lambda p: dataset.to_parquet(p),
        lambda p: dataset.save_to_disk(p),
    ]
    for target, write, stage in zip(targets, writers, (staged_file, staged_file, staged_folder)):
        with stage(target) as temporary:
            write(temporary)
    return targets


def _zip(folder: Path, final: Path) -> None:
    with staged_file(final) as temporary, zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, path.relative_to(folder.parent))


def _fresh_name(out_dir: Path, stamp: datetime) -> Path:
    base = f"preferences-{stamp:%Y%m%d-%H%M%S}"
    candidate, number = out_dir / base, 1
    while candidate.exists() or candidate.with_suffix(".zip").exists():
        number += 1
        candidate = out_dir / f"{base}-{number}"
    return candidate


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote: the folder and zip, every file, rows per format, and what each format left out."""

    votes: int
    folder: Path | None = None
    zip_path: Path | None = None
    files: list[Path] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    left_out: dict[str, dict[str, int]] = field(default_factory=dict)

    def summary(self) -> str:
        """One paragraph for the UI: where the files are, how many rows, what was left out and why."""
        if not self.votes:
            return ("Nothing to export yet: the ratings database has no votes. Rate some answers in the Compare or "
                    "Rate tab, then export again.")
        counts = ", ".join(f"{self.rows.get(name, 0)} {label}" for name, label in DATASETS.items())
        text = (f"Exported {self.votes} vote{'s' if self.votes != 1 else ''} to {self.folder}: {counts}, each as JSONL, Parquet and a datasets "
                f"folder (download: {self.zip_path.name if self.zip_path else '-'}).")
        empty = [label for name, label in DATASETS.items() if not self.rows.get(name)]
        if empty:
            text += f" No files for {', '.join(empty)}: no rows."
        for name, counts_by_reason in self.left_out.items():
            if name != "preference_text" and any(counts_by_reason.values()):
                label = DATASETS[name].removesuffix(" (conversational)")
                text += f" Left out of the {label}: {ExportRows([], counts_by_reason).left_out_text()}."
        if self.rows.get("preference"):
            text += " The margin column is strength / 5 (0.0 for a vote without a strength)."
        return text


def export_all(store: Store, out_dir: Path, stamp: datetime | None = None,
               progress: Callable[..., Any] | None = None, raters: RaterKind = "humans") -> ExportReport:
    """Export every vote (not deleted) of ``raters`` — people's by default, AI judges' or both
    (:mod:`playground.ratings.selection`) — in all formats into a new ``preferences-<time>`` folder of ``out_dir``,
    and zip it beside the folder for a download button. A pair asked twice to measure consistency is exported once
    (its first vote).

    The folder is built under a temporary name and renamed into place only when every file is written; a failure
    leaves nothing under a final name. An empty store writes nothing and says so. ``progress(fraction, desc=…)``
    is called as each format is written (``gr.Progress`` fits).
    """
    records = select(store.comparisons(), raters)
    if not records:
        return ExportReport(votes=0)
    exports = all_rows(records)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = _fresh_name(out_dir, stamp or datetime.now())
    files: list[Path] = []
    with staged_folder(final, replace=False) as temporary:  # a name picked free: never replace another export
        for index, (name, export) in enumerate(exports.items()):
            if progress is not None:
                progress(index / (len(exports) + 1), desc=f"Writing {DATASETS[name]}")
            if export.rows:
                files += [final / p.name for p in write_dataset(export.rows, temporary, name)]
    if progress is not None:
        progress(len(exports) / (len(exports) + 1), desc="Zipping the export")
    zip_path = final.with_suffix(".zip")
    _zip(final, zip_path)
    return ExportReport(votes=len(records), folder=final, zip_path=zip_path, files=files,
                        rows={name: len(e.rows) for name, e in exports.items()},
                        left_out={name: e.left_out for name, e in exports.items()})
