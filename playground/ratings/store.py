"""The ratings database: SQLite (WAL) schema and migrations for comparisons, votes, raters and rating batches.

Nothing else in the app talks SQL. SQLite is the source of truth for ratings: every vote is one short transaction
with ``synchronous=FULL``, so once :meth:`Store.vote` returns the vote is on disk and survives the app being killed
at any moment (WAL replays committed transactions on the next open). Connections are opened per operation: Gradio
calls back from a thread pool, and a fresh connection per call is cheap (tens of microseconds) and never shared
across threads; ``busy_timeout`` makes concurrent writers queue instead of failing.

A comparison has sides **a** and **b** (the models as the user picked them) and ``left_side`` says which one the
screen showed on the left, so position bias can be measured and blind votes attributed.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from playground import __version__

Winner = Literal["a", "b", "tie", "both_bad"]
WINNERS: tuple[str, ...] = ("a", "b", "tie", "both_bad")
Source = Literal["compare", "rate", "import"]

BUSY_TIMEOUT_MS = 10_000


class StoreError(RuntimeError):
    """The database can't be opened or a write was refused; the message says why and what to do."""


class AlreadyVoted(StoreError):
    """A vote cast with ``unrated_only`` on a pair that got its vote from someone else first; nothing changed."""


def now() -> str:
    """UTC timestamp, ISO 8601 with microseconds (sorts as text)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Side:
    """One model's answer in a comparison, with everything needed to reproduce and judge it."""

    model: str | None
    """Base source (packaged key, hub id or folder); None for imported preference data with no model."""
    adapter: str | None = None
    """LoRA adapter folder on top of the source, or None."""
    revision: str | None = None
    """Version of the weights when known (packaged model version, hub revision)."""
    prompt_format: str = "auto"
    params: dict[str, Any] = field(default_factory=dict)
    """Generation parameters, seed included (``GenerationParams`` as a dict)."""
    response: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    time_to_first_token: float | None = None
    tokens_per_second: float | None = None
    finish_reason: str | None = None
    history: list[dict[str, str]] | None = None
    """Earlier turns of this side's conversation when they differ from the shared ``messages`` (multi-turn)."""


@dataclass(frozen=True)
class ComparisonRecord:
    """One rated (or to-be-rated) pair: the prompt, both sides, how they were shown, and the vote."""

    messages: list[dict[str, str]]
    """The conversation the answers reply to, ending with the user's message."""
    a: Side
    b: Side
    system_prompt: str = ""
    left_side: Literal["a", "b"] = "a"
    blind: bool = False
    winner: Winner | None = None
    strength: int | None = None
    """How much better the winner is, 1 (slightly) to 5 (far); optional."""
    rationale: str = ""
    rater: str = ""
    source: Source = "compare"
    batch_id: str | None = None
    position: int | None = None
    """Order within a rating batch."""
    skipped: bool = False
    repeat_of: str | None = None
    """For a pair shown a second time later in a rating batch, sides swapped, to measure how consistent the rater
    is (:mod:`playground.ratings.reliability`): the id of the comparison it repeats. A repeat's vote never counts
    as a second vote (:func:`playground.ratings.selection.select` leaves repeats out)."""
    score_a: int | None = None
    """An optional 1–5 score of side a's answer on its own, given alongside the pairwise vote."""
    score_b: int | None = None
    judge_of: str | None = None
    """For an AI judge's vote (rater ``judge:<model>``): the id of the comparison it judged."""
    judgement: dict[str, Any] | None = None
    """An AI judge's own words: ``{"judge": model, "rubric": text, "orders": [{"shown": ["a", "b"], "text": its
    answer verbatim, "verdict": "a" | "b" | "tie" | None (unreadable)}, {"shown": ["b", "a"], …}], "consistent":
    whether both orders gave the same verdict}``."""
    id: str = field(default_factory=new_id)
    created_at: str = field(default_factory=now)
    updated_at: str | None = None
    voted_at: str | None = None
    deleted_at: str | None = None
    app_version: str = __version__

    def __post_init__(self) -> None:
        check_vote(self.winner, self.strength)
        check_score(self.score_a)
        check_score(self.score_b)
        if self.left_side not in ("a", "b"):
            raise ValueError("left_side must be 'a' or 'b'")

    @property
    def prompt(self) -> str:
        """The last user message (what the answers reply to)."""
        return self.messages[-1]["content"] if self.messages else ""


@dataclass(frozen=True)
class Batch:
    """A batch rating session: every pair of the chosen models on every prompt of a prompt set."""

    id: str
    name: str
    models: list[str]
    total: int
    status: str
    """generating, ready (all pairs generated), stopped, failed, interrupted (the app quit while generating)."""
    created_at: str
    error: str = ""
    prompts: list[dict[str, str]] = field(default_factory=list)
    """The prompt set ({"prompt", "system"?, "id"?, "category"?} each), kept so generation can resume."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Generation settings (params, load options, prompt format), kept so generation can resume."""


@dataclass(frozen=True)
class Progress:
    """How far a batch is: pairs generated so far, voted, skipped, out of the total it will have."""

    total: int
    generated: int
    rated: int
    skipped: int

    def summary(self) -> str:
        text = f"{self.rated} / {self.total} rated"
        if self.skipped:
            text += f" · {self.skipped} skipped"
        if self.generated < self.total:
            text += f" · {self.generated} / {self.total} generated"
        return text


def winner_from_screen(left_side: str, choice: str) -> Winner:
    """Turn what the user clicked (left / right / tie / both_bad, as seen on screen) into the stored winner."""
    if choice == "left":
        return left_side  # type: ignore[return-value]
    if choice == "right":
        return "b" if left_side == "a" else "a"
    check_vote(choice, None)
    return choice  # type: ignore[return-value]


def check_vote(winner: str | None, strength: int | None) -> None:
    """Raise ValueError for a winner outside a/b/tie/both_bad or a strength outside 1–5."""
    if winner is not None and winner not in WINNERS:
        raise ValueError(f"winner must be one of {', '.join(WINNERS)}, got {winner!r}")
    if strength is not None and (isinstance(strength, bool) or not isinstance(strength, int) or not 1 <= strength <= 5):
        raise ValueError(f"strength must be an integer from 1 to 5, got {strength!r}")


def check_score(score: int | None) -> None:
    """Raise ValueError for an answer score outside 1–5 (None: not scored)."""
    if score is not None and (isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5):
        raise ValueError(f"an answer's score must be an integer from 1 to 5, got {score!r}")


# Migrations, oldest first. PRAGMA user_version holds how many have run; never edit one that has shipped, append.
MIGRATIONS: tuple[str, ...] = (
    # 1: comparisons with both sides and the vote; raters.
    """
    CREATE TABLE comparisons (
        id TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        voted_at TEXT,
        deleted_at TEXT,
        source TEXT NOT NULL CHECK (source IN ('compare', 'rate', 'import')),
        rater TEXT NOT NULL DEFAULT '',
        messages TEXT NOT NULL,
        system_prompt TEXT NOT NULL DEFAULT '',
        model_a TEXT, adapter_a TEXT, side_a TEXT NOT NULL, response_a TEXT NOT NULL,
        model_b TEXT, adapter_b TEXT, side_b TEXT NOT NULL, response_b TEXT NOT NULL,
        left_side TEXT NOT NULL CHECK (left_side IN ('a', 'b')),
        blind INTEGER NOT NULL,
        winner TEXT CHECK (winner IN ('a', 'b', 'tie', 'both_bad')),
        strength INTEGER CHECK (strength BETWEEN 1 AND 5),
        rationale TEXT NOT NULL DEFAULT '',
        app_version TEXT NOT NULL
    );
    CREATE INDEX comparisons_voted ON comparisons (voted_at);
    CREATE INDEX comparisons_models ON comparisons (model_a, model_b);
    CREATE TABLE raters (name TEXT PRIMARY KEY, created_at TEXT NOT NULL, last_vote_at TEXT);
    """,
    # 2: batch rating (Rate tab): a batch of generated pairs rated one by one.
    """
    CREATE TABLE batches (
        id TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        name TEXT NOT NULL,
        models TEXT NOT NULL,
        total INTEGER NOT NULL,
        status TEXT NOT NULL,
        error TEXT NOT NULL DEFAULT '',
        prompts TEXT NOT NULL DEFAULT '[]',
        settings TEXT NOT NULL DEFAULT '{}'
    );
    ALTER TABLE comparisons ADD COLUMN batch_id TEXT REFERENCES batches(id);
    ALTER TABLE comparisons ADD COLUMN position INTEGER;
    ALTER TABLE comparisons ADD COLUMN skipped INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX comparisons_batch ON comparisons (batch_id, position);
    """,
    # 3: rating reliability (a pair repeated later in a batch, 1-5 answer scores) and AI judges' votes.
    """
    ALTER TABLE comparisons ADD COLUMN repeat_of TEXT;
    ALTER TABLE comparisons ADD COLUMN score_a INTEGER CHECK (score_a BETWEEN 1 AND 5);
    ALTER TABLE comparisons ADD COLUMN score_b INTEGER CHECK (score_b BETWEEN 1 AND 5);
    ALTER TABLE comparisons ADD COLUMN judge_of TEXT;
    ALTER TABLE comparisons ADD COLUMN judgement TEXT;
    CREATE INDEX comparisons_repeat ON comparisons (repeat_of);
    CREATE INDEX comparisons_judge ON comparisons (judge_of);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

_SIDE_COLUMNS = ("model", "adapter", "response")


def _side_json(side: Side) -> str:
    return json.dumps({k: v for k, v in asdict(side).items() if k not in _SIDE_COLUMNS})


def _row_values(record: ComparisonRecord) -> dict[str, Any]:
    stamp = record.updated_at or now()
    return {
        "id": record.id, "created_at": record.created_at, "updated_at": stamp, "voted_at": record.voted_at,
        "deleted_at": record.deleted_at, "source": record.source, "rater": record.rater,
        "messages": json.dumps(record.messages), "system_prompt": record.system_prompt,
        "model_a": record.a.model, "adapter_a": record.a.adapter, "side_a": _side_json(record.a),
        "response_a": record.a.response,
        "model_b": record.b.model, "adapter_b": record.b.adapter, "side_b": _side_json(record.b),
        "response_b": record.b.response,
        "left_side": record.left_side, "blind": int(record.blind), "winner": record.winner,
        "strength": record.strength, "rationale": record.rationale, "app_version": record.app_version,
        "batch_id": record.batch_id, "position": record.position, "skipped": int(record.skipped),
        "repeat_of": record.repeat_of, "score_a": record.score_a, "score_b": record.score_b,
        "judge_of": record.judge_of,
        "judgement": None if record.judgement is None else json.dumps(record.judgement, ensure_ascii=False),
    }


def _from_row(row: sqlite3.Row) -> ComparisonRecord:
    def side(suffix: str) -> Side:
        extra = json.loads(row[f"side_{suffix}"])
        return Side(model=row[f"model_{suffix}"], adapter=row[f"adapter_{suffix}"],
                    response=row[f"response_{suffix}"], **extra)

    return ComparisonRecord(
        id=row["id"], created_at=row["created_at"], updated_at=row["updated_at"], voted_at=row["voted_at"],
        deleted_at=row["deleted_at"], source=row["source"], rater=row["rater"],
        messages=json.loads(row["messages"]), system_prompt=row["system_prompt"], a=side("a"), b=side("b"),
        left_side=row["left_side"], blind=bool(row["blind"]), winner=row["winner"], strength=row["strength"],
        rationale=row["rationale"], app_version=row["app_version"], batch_id=row["batch_id"],
        position=row["position"], skipped=bool(row["skipped"]), repeat_of=row["repeat_of"],
        score_a=row["score_a"], score_b=row["score_b"], judge_of=row["judge_of"],
        judgement=None if row["judgement"] is None else json.loads(row["judgement"]),
    )


class Store:
    """The ratings database at ``path`` (created and migrated on open)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.execute("PRAGMA journal_mode=WAL")  # persistent: set once, every later connection uses it
                self._migrate(db)
        except sqlite3.DatabaseError as error:
            raise StoreError(f"Can't open the ratings database {self.path}: {error}. If the file is damaged, move "
                             f"it aside (votes exported earlier are in the exports folder) and restart.") from error

    # ------------------------------------------------------------------------------------------ plumbing

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA synchronous=FULL")  # a commit is on disk before it returns (power loss too)
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        finally:
            db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. BEGIN IMMEDIATE takes the write lock up front, so writers queue (busy_timeout)
        instead of failing on a read-to-write upgrade."""
        with self._connect() as db:
            try:
                db.execute("BEGIN IMMEDIATE")
                yield db
                db.execute("COMMIT")
            except sqlite3.OperationalError as error:
                _rollback(db)
                if "full" in str(error).lower():
                    raise StoreError("The disk is full: the vote was not saved. Free some space and vote again.") \
                        from error
                raise StoreError(f"The ratings database refused the write ({error}); nothing was changed.") \
                    from error
            except BaseException:
                _rollback(db)
                raise

    def _migrate(self, db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} was written by a newer RLHF Playground (schema {version}, this app "
                             f"knows {SCHEMA_VERSION}). Upgrade the app, or use another --data-dir.")
        for number in range(version, SCHEMA_VERSION):
            db.execute("BEGIN IMMEDIATE")
            try:
                # executescript() would COMMIT first; statements one by one keep the migration all-or-nothing.
                for statement in _statements(MIGRATIONS[number]):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={number + 1}")
                db.execute("COMMIT")
            except BaseException:
                _rollback(db)
                raise

    def schema_version(self) -> int:
        with self._connect() as db:
            return db.execute("PRAGMA user_version").fetchone()[0]

    def integrity_check(self) -> str:
        """SQLite's own consistency check: ``ok`` when the file is sound."""
        with self._connect() as db:
            return db.execute("PRAGMA integrity_check").fetchone()[0]

    # ------------------------------------------------------------------------------------------ votes

    def save(self, record: ComparisonRecord, unrated_only: bool = False) -> ComparisonRecord:
        """Insert a comparison, or replace the one with the same id (a changed vote updates, never duplicates).
        With ``unrated_only``, a stored comparison that already has a vote is left as it is and
        :class:`AlreadyVoted` is raised: the check and the write are one transaction, so of two raters voting on
        the same pair at once, exactly one vote lands and the other is told so."""
        values = _row_values(record)
        columns = ", ".join(values)
        updates = ", ".join(f"{c} = excluded.{c}" for c in values if c not in ("id", "created_at"))
        condition = " WHERE comparisons.winner IS NULL" if unrated_only else ""
        with self._write() as db:
            written = db.execute(f"INSERT INTO comparisons ({columns}) VALUES ({', '.join(':' + c for c in values)}) "
                                 f"ON CONFLICT (id) DO UPDATE SET {updates}{condition}", values).rowcount
            if not written:
                raise AlreadyVoted(f"comparison {record.id} already has a vote")
            if record.winner is not None and record.rater:
                _touch_rater(db, record.rater, values["updated_at"])
        return replace(record, updated_at=values["updated_at"])

    def vote(self, record: ComparisonRecord, winner: Winner, strength: int | None = None, rationale: str = "",
             rater: str = "", score_a: int | None = None, score_b: int | None = None,
             unrated_only: bool = False) -> ComparisonRecord:
        """Record (or change) the vote on ``record``, saving the whole record; returns it as stored. ``score_a`` /
        ``score_b``: the optional 1–5 score of each side's answer, given with the vote (None: not scored).
        ``unrated_only``: only if the stored pair has no vote yet, else :class:`AlreadyVoted` (see :meth:`save`).

        When this returns, the vote is committed to disk.
        """
        check_vote(winner, strength)
        check_score(score_a)
        check_score(score_b)
        stamp = now()
        voted = replace(record, winner=winner, strength=strength, rationale=(rationale or "").strip(),
                        rater=rater or record.rater, voted_at=stamp, updated_at=stamp, skipped=False,
                        score_a=score_a, score_b=score_b)
        return self.save(voted, unrated_only)

    def clear_vote(self, comparison_id: str, voted_at: str | None = None) -> bool:
        """Undo a vote: the comparison goes back to unrated (the Rate tab's U key); True if a vote was cleared.

        With ``voted_at`` (the vote's time, as :meth:`vote` stored it), only that very vote is cleared: if the pair's
        vote has since been undone, cast again (by anyone) or deleted, nothing changes and this returns False. The
        check and the write are one statement, so an Undo can never take back a vote it didn't mean."""
        same_vote = " AND voted_at = ? AND winner IS NOT NULL AND deleted_at IS NULL" if voted_at is not None else ""
        with self._write() as db:
            return db.execute("UPDATE comparisons SET winner = NULL, strength = NULL, rationale = '', voted_at = NULL, "
                              "score_a = NULL, score_b = NULL, skipped = 0, updated_at = ? WHERE id = ?" + same_vote,
                              (now(), comparison_id, *([voted_at] if voted_at is not None else []))).rowcount == 1

    def skip(self, comparison_id: str) -> None:
        with self._write() as db:
            db.execute("UPDATE comparisons SET skipped = 1, updated_at = ? WHERE id = ?", (now(), comparison_id))

    def delete(self, comparison_id: str) -> bool:
        """Soft delete: hidden from history, leaderboard and exports until :meth:`restore`."""
        with self._write() as db:
            return db.execute("UPDATE comparisons SET deleted_at = ?, updated_at = ? WHERE id = ? AND deleted_at IS "
                              "NULL", (now(), now(), comparison_id)).rowcount == 1

    def restore(self, comparison_id: str) -> bool:
        with self._write() as db:
            return db.execute("UPDATE comparisons SET deleted_at = NULL, updated_at = ? WHERE id = ? AND deleted_at "
                              "IS NOT NULL", (now(), comparison_id)).rowcount == 1

    def insert_many(self, records: Sequence[ComparisonRecord]) -> None:
        """Insert all records in one transaction, or none: an id already in the database aborts the whole lot."""
        with self._write() as db:
            ids = [r.id for r in records]
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                taken = db.execute(f"SELECT id FROM comparisons WHERE id IN ({', '.join('?' * len(chunk))})",
                                   chunk).fetchall()
                if taken:
                    raise StoreError(f"{len(taken)} of these comparisons are already in the database (first id "
                                     f"{taken[0]['id']}); nothing was written.")
            for record in records:
                values = _row_values(record)
                db.execute(f"INSERT INTO comparisons ({', '.join(values)}) VALUES "
                           f"({', '.join(':' + c for c in values)})", values)

    def get(self, comparison_id: str) -> ComparisonRecord | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM comparisons WHERE id = ?", (comparison_id,)).fetchone()
        return _from_row(row) if row else None

    def comparisons(self, voted_only: bool = True, include_deleted: bool = False,
                    batch_id: str | None = None) -> list[ComparisonRecord]:
        """Comparisons oldest vote first (creation order for unvoted ones)."""
        where = ["1 = 1"]
        if voted_only:
            where.append("winner IS NOT NULL")
        if not include_deleted:
            where.append("deleted_at IS NULL")
        args: list[Any] = []
        if batch_id is not None:
            where.append("batch_id = ?")
            args.append(batch_id)
        with self._connect() as db:
            rows = db.execute(f"SELECT * FROM comparisons WHERE {' AND '.join(where)} "
                              f"ORDER BY COALESCE(voted_at, created_at), id", args).fetchall()
        return [_from_row(r) for r in rows]

    def count(self) -> int:
        """Votes in the database (not deleted)."""
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM comparisons WHERE winner IS NOT NULL AND deleted_at IS NULL") \
                .fetchone()[0]

    # ------------------------------------------------------------------------------------------ raters

    def add_rater(self, name: str) -> None:
        with self._write() as db:
            db.execute("INSERT INTO raters (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                       (name, now()))

    def raters(self) -> list[str]:
        with self._connect() as db:
            return [r["name"] for r in db.execute("SELECT name FROM raters ORDER BY name")]

    # ------------------------------------------------------------------------------------------ batches

    def create_batch(self, name: str, models: Sequence[str], total: int, prompts: Sequence[dict[str, str]] = (),
                     settings: dict[str, Any] | None = None) -> Batch:
        batch = Batch(id=new_id(), name=name, models=list(models), total=total, status="generating",
                      created_at=now(), prompts=list(prompts), settings=settings or {})
        with self._write() as db:
            db.execute("INSERT INTO batches (id, created_at, name, models, total, status, prompts, settings) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (batch.id, batch.created_at, name, json.dumps(batch.models), total, batch.status,
                        json.dumps(batch.prompts), json.dumps(batch.settings)))
        return batch

    def set_batch_status(self, batch_id: str, status: str, error: str = "") -> None:
        with self._write() as db:
            db.execute("UPDATE batches SET status = ?, error = ? WHERE id = ?", (status, error, batch_id))

    def batches(self) -> list[Batch]:
        """All batches, newest first."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM batches ORDER BY created_at DESC").fetchall()
        return [_batch_from_row(r) for r in rows]

    def batch(self, batch_id: str) -> Batch | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM batches WHERE id = ?", (batch_id,)).fetchone()
        return _batch_from_row(row) if row else None

    def progress(self, batch_id: str) -> Progress:
        with self._connect() as db:
            total = db.execute("SELECT total FROM batches WHERE id = ?", (batch_id,)).fetchone()
            row = db.execute(
                "SELECT COUNT(*) AS generated, COUNT(winner) AS rated, "
                "SUM(CASE WHEN skipped = 1 AND winner IS NULL THEN 1 ELSE 0 END) AS skipped "
                "FROM comparisons WHERE batch_id = ? AND deleted_at IS NULL", (batch_id,)).fetchone()
        return Progress(total=total[0] if total else 0, generated=row["generated"], rated=row["rated"],
                        skipped=row["skipped"] or 0)

    def batch_positions(self, batch_id: str) -> set[int]:
        """Positions already generated in a batch (to resume generation where it stopped)."""
        with self._connect() as db:
            return {r[0] for r in db.execute("SELECT position FROM comparisons WHERE batch_id = ?", (batch_id,))}

    def at_position(self, batch_id: str, position: int) -> ComparisonRecord | None:
        """The comparison at ``position`` of a batch (deleted or not), or None."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM comparisons WHERE batch_id = ? AND position = ? ORDER BY created_at "
                             "LIMIT 1", (batch_id, position)).fetchone()
        return _from_row(row) if row else None

    def next_unrated(self, batch_id: str, include_skipped: bool = False,
                     exclude: Collection[str] = ()) -> ComparisonRecord | None:
        """The next pair to show: unrated, not skipped (unless asked), not one of the ids in ``exclude`` (pairs
        other raters have on screen), lowest position first — among the pairs generated so far, so the batch
        writes a repeat only once every position below it exists (:mod:`playground.ratings.batch`)."""
        skipped = "" if include_skipped else "AND skipped = 0"
        others = f"AND id NOT IN ({', '.join('?' * len(exclude))})" if exclude else ""
        with self._connect() as db:
            row = db.execute(f"SELECT * FROM comparisons WHERE batch_id = ? AND winner IS NULL AND deleted_at IS "
                             f"NULL {skipped} {others} ORDER BY position LIMIT 1", (batch_id, *exclude)).fetchone()
        return _from_row(row) if row else None

    def last_voted(self, batch_id: str) -> ComparisonRecord | None:
        """The most recent vote in a batch, whoever cast it (the Rate tab's Undo doesn't use it: it takes back only
        the session's own vote, see ``playground.ui.rate_tab.undo_last``)."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM comparisons WHERE batch_id = ? AND winner IS NOT NULL AND deleted_at IS "
                             "NULL ORDER BY voted_at DESC LIMIT 1", (batch_id,)).fetchone()
        return _from_row(row) if row else None

    def unskip(self, batch_id: str) -> int:
        """Put skipped pairs back in the queue; returns how many."""
        with self._write() as db:
            return db.execute("UPDATE comparisons SET skipped = 0 WHERE batch_id = ? AND skipped = 1 AND winner IS "
                              "NULL", (batch_id,)).rowcount

    # ------------------------------------------------------------------------------------------ AI judges

    def judged_by(self, rater: str, rubric: str | None = None) -> set[str]:
        """Ids of the comparisons the AI judge ``rater`` (``judge:<model>``) has judged — with ``rubric`` (as its
        votes' judgement stores it) when given, with any rubric when None — its deleted votes included: deleting a
        judge's vote hides it, it doesn't ask for the pair to be judged again. A judge whose rubric changed is
        another judge of the same pairs: what it judged with the old rubric isn't judged with the new one."""
        sql, args = "SELECT judge_of FROM comparisons WHERE rater = ? AND judge_of IS NOT NULL", [rater]
        if rubric is not None:
            sql += " AND json_extract(judgement, '$.rubric') = ?"
            args.append(rubric)
        with self._connect() as db:
            return {r[0] for r in db.execute(sql, args)}


def _batch_from_row(r: sqlite3.Row) -> Batch:
    return Batch(id=r["id"], name=r["name"], models=json.loads(r["models"]), total=r["total"], status=r["status"],
                 created_at=r["created_at"], error=r["error"], prompts=json.loads(r["prompts"]),
                 settings=json.loads(r["settings"]))


def _touch_rater(db: sqlite3.Connection, name: str, stamp: str) -> None:
    db.execute("INSERT INTO raters (name, created_at, last_vote_at) VALUES (?, ?, ?) "
               "ON CONFLICT (name) DO UPDATE SET last_vote_at = excluded.last_vote_at", (name, stamp, stamp))


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        db.execute("ROLLBACK")


def _statements(script: str) -> list[str]:
    """Split a migration into statements (our migrations hold no semicolons inside strings)."""
    return [s.strip() for s in script.split(";") if s.strip()]
