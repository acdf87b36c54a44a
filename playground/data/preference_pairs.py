"""Preference pairs for the reward and DPO stages: where they come from, and how one becomes token ids.

Sources, by name: ``votes`` (people's votes in this app, exported exactly as History → Export does),
``judge-votes`` (AI judges' votes, :mod:`playground.ratings.judge`), ``all-votes`` (both), ``preferences`` (the
bundled pairs whose rejected answer has a labelled flaw), uploaded preference files (saved by the Data tab into
``DATA_DIR/datasets/preferences/`` only when every row is valid and some pair is new; repeated rows are skipped),
or a file path. Votes become pairs as History → Export writes them
(:func:`playground.ratings.export.preference_rows`); a file is read straight into pairs by the same checker the
Import button uses (:func:`playground.ratings.importer.read_file`), and :func:`pair_from_row` gives the pair its
row would give once imported and exported — so a vote, an import and a bundled row are the same kind of pair.

:func:`encode` is the one place a (prompt, answer) becomes tokens, for training *and* for scoring in the Reward
tab: a reward model sees at scoring time exactly what it saw in training.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from playground.core.distributed import is_main_process, wait_for_main_process
from playground.core.files import listed_files, numbered_names, publish_unique, write_atomic
from playground.core.row_files import EXTENSIONS, counted
from playground.core.settings import Settings
from playground.data.instructions import safe_name
from playground.models.prompting import Message, render
from playground.ratings.export import margin_for, preference_rows
from playground.ratings.importer import PreferenceFile, PreferenceRow, read_file
from playground.ratings.selection import RATER_KINDS, RaterKind, select
from playground.ratings.store import ComparisonRecord, Store

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "datasets"
VOTES = "votes"
VOTE_SOURCES: dict[str, RaterKind] = {VOTES: "humans", "judge-votes": "judges", "all-votes": "all"}
"""The sources read from the ratings database, and whose votes each one holds."""
BUNDLED = {"preferences": ASSETS / "preferences.jsonl"}


class PreferenceDataError(ValueError):
    """Preference data that can't be used; the message says which source and what to do."""


@dataclass(frozen=True)
class Pair:
    """One preference: a conversation (ending with the user's turn), a better and a worse answer."""

    id: str
    messages: list[Message]
    system: str
    chosen: str
    rejected: str
    margin: float = 0.0
    """The vote's strength / 5 (0 without one): Llama 2's margin, used when the reward config asks for it."""


@dataclass(frozen=True)
class PreferenceSet:
    """One selectable source of pairs, for the Train form and the Data tab."""

    name: str
    path: Path | None
    pairs: int
    origin: str
    """"votes", "bundled" or "uploaded"."""


@dataclass(frozen=True)
class Upload:
    """What a preference upload did: the set it was saved as (None when it added nothing), its pairs, the repeated
    rows skipped, and the sets that already held every pair (when nothing was saved)."""

    file: str
    saved: PreferenceSet | None
    pairs: int
    repeated: int = 0
    held_by: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line for the Data tab."""
        repeated = f" ({counted(self.repeated, 'repeated row')} skipped)" if self.repeated else ""
        if self.saved is None:
            where = ", ".join(f"**{name}**" for name in self.held_by)
            every = "the" if self.pairs == 1 else f"all {self.pairs:,}"
            return (f"Nothing new was saved: {every} {'pair' if self.pairs == 1 else 'pairs'} in {self.file}"
                    f"{repeated} {'is' if self.pairs == 1 else 'are'} already in {where}.")
        return (f"Saved **{self.saved.name}**: {counted(self.pairs, 'pair')}{repeated}, now usable for "
                f"reward-model and DPO runs.")


def folder(settings: Settings) -> Path:
    """Where uploaded preference files are kept."""
    return settings.datasets_dir / "preferences"


def _uploaded(settings: Settings | None) -> list[Path]:
    return listed_files(folder(settings) if settings else None, EXTENSIONS)


def pairs_from_records(records: Iterable[ComparisonRecord]) -> tuple[list[Pair], str]:
    """Pairs from comparison records (ties, both-bad and diverging multi-turn pairs left out, as in Export), and a
    sentence saying what was left out."""
    exported = preference_rows(records, conversational=True)
    return [_from_trl_row(row) for row in exported.rows], f"left out: {exported.left_out_text()}"


def _checked(path: Path) -> PreferenceFile:
    """A preference file's rows (repeated rows left out), or :class:`PreferenceDataError` with the per-row report."""
    checked = read_file(path)
    if not checked.ok:
        raise PreferenceDataError(checked.refusal())
    return checked


def pair_from_row(row: PreferenceRow) -> Pair:
    """A checked file row as a pair: the same pair its vote would give once imported and exported."""
    return Pair(id=row.id or "", messages=[dict(m) for m in row.messages], system=row.system,  # type: ignore[misc]
                chosen=row.chosen, rejected=row.rejected, margin=margin_for(row.strength))


def _from_file(path: Path) -> list[Pair]:
    return [pair_from_row(row) for row in _checked(path).rows]


def load_pairs(name: str, settings: Settings | None) -> list[Pair]:
    """The pairs of one source (see the module docstring), or :class:`PreferenceDataError` saying why not."""
    text = (name or "").strip()
    if text in VOTE_SOURCES:
        kind = VOTE_SOURCES[text]
        judge_hint = " or let an AI judge vote (Rate tab)" if kind != "humans" else ""
        if settings is None or not settings.ratings_db.exists():
            raise PreferenceDataError(f"There are no votes yet: rate some answers in Compare or Rate first"
                                      f"{judge_hint}.")
        pairs, left_out = pairs_from_records(select(Store(settings.ratings_db).comparisons(), kind))
        if not pairs:
            raise PreferenceDataError(f"The votes of {RATER_KINDS[kind]} hold no chosen/rejected pair yet "
                                      f"({left_out}): vote Left or Right is better on a few comparisons first"
                                      f"{judge_hint}.")
        return pairs
    path = BUNDLED.get(text) or next((p for p in _uploaded(settings) if text in (p.stem, p.name)), None)
    if path is None and text and Path(text).expanduser().is_file():
        path = Path(text).expanduser()
    if path is None or not path.is_file():
        known = [s.name for s in list_sets(settings)]
        raise PreferenceDataError(f"No preference data {text!r}: choose one of {', '.join(known)}, or give the path "
                                  f"of a file with prompt/chosen/rejected." if text else "Choose preference data.")
    return _from_file(path)


def list_sets(settings: Settings | None) -> list[PreferenceSet]:
    """Your votes (counted), the bundled pairs and the uploaded files: what the Train form offers."""
    sets = []
    for source in VOTE_SOURCES:
        count = 0
        if settings is not None and settings.ratings_db.exists():
            try:
                count = len(load_pairs(source, settings))
            except PreferenceDataError:
                pass
        sets.append(PreferenceSet(source, None, count, "votes"))
    for name, path in BUNDLED.items():
        if path.is_file():
            sets.append(PreferenceSet(name, path, _count_lines(path), "bundled"))
    for path in _uploaded(settings):  # checked when saved; reading them again is quick next to a training run
        try:
            sets.append(PreferenceSet(path.stem, path, len(_from_file(path)), "uploaded"))
        except PreferenceDataError:
            sets.append(PreferenceSet(path.stem, path, 0, "uploaded"))
    return sets


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def save_upload(source: Path, settings: Settings, name: str | None = None) -> Upload:
    """Check an uploaded preference file whole (every problem listed by row), then keep a copy under a safe, unused
    name. Nothing is written when any row is bad (:class:`PreferenceDataError`), nor when the bundled pairs and
    earlier uploads already hold every pair (the :class:`Upload` says which)."""
    source = Path(source)
    checked = _checked(source)
    new = {row.key() for row in checked.rows}
    held_by = []
    for known in [*BUNDLED.values(), *_uploaded(settings)]:
        try:
            keys = {row.key() for row in _checked(known).rows}
        except PreferenceDataError:  # a file spoiled since it was saved holds nothing to compare with
            continue
        if keys & new:
            held_by.append(known.stem)
            new -= keys
    pairs = len(checked.rows)
    if not new:
        return Upload(source.name, None, pairs, checked.repeated, tuple(held_by))
    where = folder(settings)
    suffix = source.suffix.lower()
    stem = safe_name(name or source.stem, suffix)
    taken = set(BUNDLED) | {VOTES} | {p.stem for p in _uploaded(settings)}
    names = numbered_names(stem, suffix, taken)
    final = publish_unique(where, lambda temporary: shutil.copyfile(source, temporary), names)
    if final is None:
        raise PreferenceDataError(f"Too many preference sets are called {stem!r}: choose another name.")
    return Upload(source.name, PreferenceSet(final.stem, final, pairs, "uploaded"), pairs, checked.repeated)


def split(pairs: list[Pair], eval_fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """Shuffle (seeded) and hold out ``eval_fraction`` of the pairs (at least one when the fraction is > 0 and
    there are two or more pairs)."""
    shuffled = list(pairs)
    random.Random(seed).shuffle(shuffled)
    held = int(len(shuffled) * eval_fraction)
    if eval_fraction > 0 and held == 0 and len(shuffled) >= 2:
        held = 1
    return shuffled[held:], shuffled[:held]


def _from_trl_row(row: dict[str, Any]) -> Pair:
    """The inverse of :func:`trl_row` (a system message first in the prompt becomes the pair's system prompt)."""
    prompt = list(row["prompt"])
    system = prompt.pop(0)["content"] if prompt and prompt[0]["role"] == "system" else ""
    return Pair(id=row["id"], messages=prompt, system=system, chosen=row["chosen"][0]["content"],
                rejected=row["rejected"][0]["content"], margin=float(row.get("margin", 0.0)))


def trl_row(pair: Pair) -> dict[str, Any]:
    """A pair as a TRL conversational preference row (what Export writes, and what the importer reads back)."""
    system = [{"role": "system", "content": pair.system}] if pair.system else []
    return {"id": pair.id, "prompt": system + [dict(m) for m in pair.messages],
            "chosen": [{"role": "assistant", "content": pair.chosen}],
            "rejected": [{"role": "assistant", "content": pair.rejected}], "margin": pair.margin}


def write_pairs(path: Path, pairs: list[Pair]) -> None:
    """A run's snapshot of its data as TRL preference JSONL (so a resumed run trains on the same split, and the
    file is ordinary preference data for any other tool)."""
    write_atomic(path, "".join(json.dumps(trl_row(p), ensure_ascii=False) + "\n" for p in pairs))


def read_pairs(path: Path) -> list[Pair]:
    """Read back what :func:`write_pairs` wrote."""
    return [_from_trl_row(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run_pairs(cfg: Any, settings: Settings, data_dir: Path, resume: bool) -> tuple[list[Pair], list[Pair]]:
    """A run's (train, held-out) pairs: read from ``cfg.datasets``, cut to ``max_examples`` and split (seeded) on a
    new run and written to ``data_dir`` (train.jsonl, eval.jsonl); read back from there on resume.

    In a multi-process run only the main process reads the datasets and writes the split; the others wait for its
    files and read them. Each reading the datasets itself could give different pairs (a vote saved between two
    reads of ``votes``), and a process with one batch more than the others waits for them forever."""
    train_file, eval_file = data_dir / "train.jsonl", data_dir / "eval.jsonl"
    if resume and train_file.is_file():
        return read_pairs(train_file), read_pairs(eval_file) if eval_file.is_file() else []
    if not is_main_process():
        wait_for_main_process([train_file, eval_file])
        return read_pairs(train_file), read_pairs(eval_file)
    pairs = [p for name in cfg.datasets for p in load_pairs(name, settings)]
    if cfg.max_examples:
        pairs = split(pairs, 0, cfg.seed)[0][: cfg.max_examples]
    train, held = split(pairs, cfg.eval_fraction, cfg.seed)
    if not train:
        raise PreferenceDataError("No preference pairs left to train on: add data or lower eval_fraction.")
    write_pairs(eval_file, held)
    write_pairs(train_file, train)
    return train, held


# ---------------------------------------------------------------------------------------------- tokens


def encode_prompt(tokenizer: Any, messages: list[Message], system: str, fmt: str) -> list[int]:
    """The prompt's token ids, rendered as Compare renders it for a tuned model (``fmt``: instruction or chat)."""
    rendered = render(messages, fmt, "base", tokenizer, system=system)  # type: ignore[arg-type]
    return list(tokenizer(rendered.text, add_special_tokens=rendered.add_special_tokens)["input_ids"])


def encode_answer(tokenizer: Any, answer: str) -> list[int]:
    """The answer's token ids, ending with EOS (a finished answer), tokenized on its own as a model generates it."""
    ids = list(tokenizer(answer.strip(), add_special_tokens=False)["input_ids"])
    return ids + ([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])


def fit(prompt_ids: list[int], answer_ids: list[int], max_length: int) -> tuple[list[int], list[int]]:
    """Cut a (prompt, answer) to ``max_length`` tokens: the answer keeps at most ¾ of the room (cut at its end),
    the prompt keeps its last tokens (its first token too: usually BOS)."""
    if len(prompt_ids) + len(answer_ids) <= max_length:
        return prompt_ids, answer_ids
    answer_ids = answer_ids[: max(max_length * 3 // 4, max_length - len(prompt_ids))]
    room = max_length - len(answer_ids)
    if len(prompt_ids) > room:
        prompt_ids = prompt_ids[:1] + prompt_ids[len(prompt_ids) - (room - 1):] if room > 1 else prompt_ids[:room]
    return prompt_ids, answer_ids


def encode(tokenizer: Any, messages: list[Message], system: str, answer: str, fmt: str,
           max_length: int) -> list[int]:
    """prompt + answer as one sequence of at most ``max_length`` ids: what a reward model scores."""
    prompt_ids, answer_ids = fit(encode_prompt(tokenizer, messages, system, fmt), encode_answer(tokenizer, answer),
                                 max_length)
    return prompt_ids + answer_ids
