"""Vote history: the comparisons as a filterable table, one comparison in detail, and votes per model pair.

Pure functions over :class:`~playground.ratings.store.ComparisonRecord` lists (the store reads, this shapes), so the
History tab stays a thin layer and the filters are tested without a browser.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from playground.core.verbatim import escape, verbatim_html
from playground.ratings.leaderboard import display_names, model_identity
from playground.ratings.selection import RaterKind, check_kind, kind_of
from playground.ratings.store import ComparisonRecord, Side

WINNER_LABELS = {"a": "A better", "b": "B better", "tie": "tie", "both_bad": "both bad"}
TABLE_COLUMNS = ["voted (UTC)", "rater", "prompt", "model A", "model B", "left", "winner", "strength", "source",
                 "blind", "id"]
"""The id comes last: 32 characters nobody reads, there for opening a row in the detail view."""


@dataclass(frozen=True)
class Filters:
    """What the history table shows. Empty strings mean "any"; dates are inclusive ``YYYY-MM-DD``."""

    model: str = ""
    """A model identity: shown when it is on either side."""
    winner: str = ""
    rater: str = ""
    since: str = ""
    until: str = ""
    raters: RaterKind = "humans"
    """Whose votes: people's, AI judges' or both (:mod:`playground.ratings.selection`)."""

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value:
                try:
                    pd.Timestamp(value)
                except ValueError as error:
                    raise ValueError(f"{name}: {value!r} is not a date (use YYYY-MM-DD).") from error
        if self.winner and self.winner not in WINNER_LABELS:
            raise ValueError(f"winner must be one of {', '.join(WINNER_LABELS)}")
        check_kind(self.raters)

    def keep(self, record: ComparisonRecord) -> bool:
        identities = (model_identity(record.a), model_identity(record.b))
        day = (record.voted_at or record.created_at)[:10]
        return ((self.raters == "all" or kind_of(record) == self.raters)
                and (not self.model or self.model in identities)
                and (not self.winner or record.winner == self.winner)
                and (not self.rater or record.rater == self.rater)
                and (not self.since or day >= str(pd.Timestamp(self.since).date()))
                and (not self.until or day <= str(pd.Timestamp(self.until).date())))


def model_options(records: Iterable[ComparisonRecord]) -> list[tuple[str, str]]:
    """(label, identity) for every model that appears in the records, for the model filter."""
    identities = {i for r in records for i in (model_identity(r.a), model_identity(r.b)) if i}
    names = display_names(sorted(identities))
    return sorted(((names[i], i) for i in identities), key=lambda pair: pair[0].lower())


def _name(side: Side, names: dict[str, str]) -> str:
    identity = model_identity(side)
    return names.get(identity, identity) if identity else "(imported)"


def table(records: Iterable[ComparisonRecord], filters: Filters = Filters()) -> pd.DataFrame:
    """One row per comparison (newest first) that passes ``filters``; the prompt shortened to one line."""
    kept = [r for r in records if filters.keep(r)]
    names = display_names({i for r in kept for i in (model_identity(r.a), model_identity(r.b)) if i})
    rows = [
        ((r.voted_at or r.created_at)[:19].replace("T", " "), r.rater,
         " ".join(r.prompt.split())[:80], _name(r.a, names), _name(r.b, names), "A" if r.left_side == "a" else "B",
         WINNER_LABELS.get(r.winner or "", "—"), r.strength or "", _source(r), "yes" if r.blind else "no", r.id)
        for r in sorted(kept, key=lambda r: r.voted_at or r.created_at, reverse=True)
    ]
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def _source(record: ComparisonRecord) -> str:
    """Where a vote came from; a repeated pair (asked again to measure consistency) and a judge's vote say so."""
    if record.repeat_of:
        return f"{record.source} (repeat)"
    if record.judge_of:
        return "judge"
    return record.source


def pair_counts(records: Iterable[ComparisonRecord]) -> pd.DataFrame:
    """Votes per model pair (the pair in alphabetical order), with how each outcome went. A pair asked again to
    measure consistency counts once (its first vote), as in the leaderboard."""
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for r in records:
        a, b = model_identity(r.a), model_identity(r.b)
        if r.winner is None or a is None or b is None or r.repeat_of is not None:
            continue
        winner = r.winner
        if a > b:  # one row per unordered pair
            a, b = b, a
            winner = {"a": "b", "b": "a"}.get(winner, winner)
        row = counts.setdefault((a, b), {"votes": 0, "first wins": 0, "second wins": 0, "tie": 0, "both bad": 0})
        row["votes"] += 1
        row[{"a": "first wins", "b": "second wins", "tie": "tie", "both_bad": "both bad"}[winner]] += 1
    names = display_names({m for pair in counts for m in pair})
    rows = [{"first model": names[a], "second model": names[b], **row} for (a, b), row in counts.items()]
    columns = ["first model", "second model", "votes", "first wins", "second wins", "tie", "both bad"]
    return pd.DataFrame(rows, columns=columns).sort_values("votes", ascending=False, ignore_index=True)


def detail(record: ComparisonRecord) -> str:
    """The whole comparison as HTML: prompt, both answers with how they were made, and the vote.

    Everything a person or a model wrote is escaped, and prompts and answers are shown verbatim
    (:mod:`playground.core.verbatim`), so the record reads exactly as it is stored."""
    def side(label: str, s: Side, on_left: bool) -> str:
        params = json.dumps({k: _rounded(v) for k, v in s.params.items()}, sort_keys=True)
        ttft = None if s.time_to_first_token is None else f"{s.time_to_first_token:.2f} s"
        speed = None if s.tokens_per_second is None else f"{s.tokens_per_second:.1f}"
        stats = ", ".join(f"{k} {v}" for k, v in (("prompt tokens", s.prompt_tokens), ("new tokens",
                          s.completion_tokens), ("TTFT", ttft), ("tok/s", speed), ("finished", s.finish_reason))
                          if v is not None)
        model = model_identity(s) or "(imported, model unknown)"
        return (f"<h4>{label}: <code>{escape(model)}</code> {'(left)' if on_left else '(right)'}</h4>"
                f"<p>format {escape(s.prompt_format)}{' · revision ' + escape(s.revision) if s.revision else ''}"
                f" · {escape(stats)}<br><small>params: {escape(params)}</small></p>{verbatim_html(s.response)}")

    turns = "".join(f"<li><b>{escape(m['role'])}</b>:{verbatim_html(m['content'])}</li>"
                    for m in record.messages[:-1])
    vote = WINNER_LABELS.get(record.winner or "", "not voted")
    scores = " · scores " + ", ".join(f"{label} {score if score is not None else '—'}" for label, score in
                                      (("A", record.score_a), ("B", record.score_b))) \
        if record.score_a is not None or record.score_b is not None else ""
    extra = "".join([f" · strength {record.strength}" if record.strength else "", scores,
                     f" · repeat of <code>{escape(record.repeat_of)}</code>" if record.repeat_of else "",
                     f" · judged <code>{escape(record.judge_of)}</code>" if record.judge_of else "",
                     f" · “{escape(record.rationale)}”" if record.rationale else "",
                     " · <b>deleted</b>" if record.deleted_at else ""])
    return "".join(filter(None, [
        f"<p><b>Vote:</b> {vote}{extra} · rater {escape(record.rater or '—')} · {escape(record.source)}"
        f"{' · blind' if record.blind else ''} · app {escape(record.app_version)} · id "
        f"<code>{escape(record.id)}</code></p>",
        f"<p><b>System prompt:</b></p>{verbatim_html(record.system_prompt)}" if record.system_prompt else "",
        f"<p><b>Earlier turns:</b></p><ul>{turns}</ul>" if turns else "",
        f"<p><b>Prompt:</b></p>{verbatim_html(record.prompt)}",
        side("A", record.a, record.left_side == "a"),
        side("B", record.b, record.left_side == "b"),
        _judgement_html(record.judgement) if record.judgement else "",
    ]))


def _judgement_html(judgement: dict[str, Any]) -> str:
    """An AI judge's answers, verbatim, in each order it saw the pair, with the verdict parsed from each."""
    orders = judgement.get("orders") or []
    items = "".join(
        f"<li>shown {escape(' then '.join(str(order.get('shown', ''))))}: verdict "
        f"<b>{escape(str(order.get('verdict') or 'unreadable'))}</b>{verbatim_html(str(order.get('text', '')))}</li>"
        for order in orders)
    return f"<p><b>The judge's answers:</b></p><ul>{items}</ul>" if items else ""


def _rounded(value: Any, digits: int = 4) -> Any:
    """A float without binary noise (``0.7500000000000001`` → ``0.75``); anything else unchanged."""
    return round(value, digits) if isinstance(value, float) else value

