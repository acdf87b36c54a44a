"""An AI judge: a language model asked which of two answers is better — RL from AI feedback's rater.

Any model the catalog can load judges (a packaged model, a hub id, a local folder, a base + adapter), through the
same :func:`playground.models.generation.answer` that Compare and the Rate batches use, so a base + adapter judges
exactly as it answers there. The judge is shown a *rubric* — a prompt with three places, ``{question}``,
``{first}`` and ``{second}``, for the conversation and the two answers — and ends its answer with a verdict line,
``Verdict: A`` (the first answer shown is better), ``Verdict: B`` or ``Verdict: tie``.

LLM judges prefer one position (usually the first answer) over the other. As in MT-Bench's pairwise judge (Zheng et
al. 2023), every pair is judged **in both orders**, and only a verdict the two orders agree on counts; when they
disagree, or an order's answer has no readable verdict, the pair is a tie. Decoding is greedy by default: a judge
should give the same verdict to the same pair every time.

:func:`judge_answers` is the whole judge for one pair, for callers that aren't the background runner
(:mod:`playground.ratings.judge_runs`) — a GRPO/RLOO reward, say.
"""

from __future__ import annotations

import re
import threading
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from playground import __version__
from playground.models.catalog import ModelSpec
from playground.models.generation import GenerationParams, answer
from playground.models.loading import LoadOptions, ModelCache
from playground.models.prompting import Message
from playground.ratings.leaderboard import model_identity
from playground.ratings.selection import is_judge, judge_rater
from playground.ratings.store import ComparisonRecord, Side, new_id, now

PLACES = ("{question}", "{first}", "{second}")
"""Where the rubric takes the conversation and the two answers, in the order shown."""

DEFAULT_RUBRIC = """\
Please act as an impartial judge. Compare the two AI assistants' answers to the user's request below and decide \
which one follows the user's instruction better: it does what was asked, correctly, helpfully and to the point. \
Do not let the order of the answers, their length or their style sway you. If neither is better, it is a tie.

[The user's request]
{question}

[Answer A]
{first}

[Answer B]
{second}

Give your reason in one short sentence. Then end with one line that is exactly "Verdict: A", "Verdict: B" or \
"Verdict: tie"."""

JUDGE_PARAMS = GenerationParams(temperature=0.0, max_new_tokens=200, repetition_penalty=1.0)
"""Greedy (a judge should be reproducible), no repetition penalty (the verdict line repeats the rubric's words),
room for a sentence and the verdict."""

Verdict = Literal["a", "b", "tie"]
REASON_CHARACTERS = 300
"""The most of a judge's reason kept as a vote's one-line rationale (its whole answer is kept in the judgement)."""


def _label(tie: str, letter: str) -> str:
    """A verdict's label, after an optional ``Answer`` / ``Assistant`` / ``Response``: ``tie`` (``a tie``, ``a
    draw``) or the letter A or B, as the named groups ``tie`` and ``letter``."""
    return (rf"(?:(?:answer|assistant|response)\s*[:#]?\s*)?"
            rf"(?:(?:an?\s+)?(?P<{tie}>tie|draw)\b|(?P<{letter}>a|b)\b)")


_AROUND = r"[\s*_`'\"(\[]*"
"""Markdown and quotes between the word *verdict*, its separator and the label (``**Verdict**: **B**``)."""
_VERDICT = re.compile(
    rf"\bverdict\b[*_`]*\s*[:=\-–—]?{_AROUND}{_label('tie', 'letter')}"  # Verdict: A, **Verdict**: **B**
    rf"|\[\[\s*(?P<bracket>a|b|tie)\s*\]\]"  # MT-Bench's [[A]]
    rf"|\bverdict\b[*_`]*\s+(?:is|was){_AROUND}{_label('prose_tie', 'prose_letter')}",  # the verdict is B
    re.IGNORECASE)
"""Where a judge names its verdict: ``Verdict: A`` / ``verdict - tie`` / ``**Verdict**: **B**`` / ``Verdict: Answer
A`` / ``My verdict: a tie`` or MT-Bench's ``[[A]]`` (explicit), and ``the verdict is B`` (in a sentence)."""
_LINE_PREFIX = re.compile(r"[\W_]*(?:(?:my|the|final|overall|so|thus|therefore)[\W_]+)*", re.IGNORECASE)
"""What may come before a verdict on a line of its own: markdown, list marks and a word like *Final*."""


class JudgeStopped(RuntimeError):
    """The judge was stopped part way through an answer; nothing was judged."""


class TooLong(ValueError):
    """The rubric with the pair doesn't fit the judge's context window: it would read a cut prompt."""


def check_rubric(rubric: str) -> str:
    """``rubric`` if it has each of ``{question}``, ``{first}`` and ``{second}``; ValueError naming what's missing."""
    if not (rubric or "").strip():
        raise ValueError("The rubric is empty: write what the judge should weigh, with {question}, {first} and "
                         "{second} where the request and the two answers go (or restore the default).")
    missing = [place for place in PLACES if place not in rubric]
    if missing:
        raise ValueError(f"The rubric needs {', '.join(PLACES)} (where the request and the two answers go); "
                         f"missing: {', '.join(missing)}.")
    return rubric


@dataclass(frozen=True)
class Judge:
    """A judge: the model (as the catalog resolved it), the rubric it is asked with, and how it is loaded and run."""

    spec: ModelSpec
    rubric: str = DEFAULT_RUBRIC
    options: LoadOptions = LoadOptions()
    params: GenerationParams = JUDGE_PARAMS
    prompt_format: str = "auto"
    """How the rubric reaches the model (``auto``: its chat template when it is instruction-tuned, else plain)."""

    def __post_init__(self) -> None:
        check_rubric(self.rubric)

    @property
    def model(self) -> str:
        """The judge's model identity: ``source``, or ``source + adapter`` (as the leaderboard names models)."""
        return model_identity(Side(model=self.spec.source, adapter=self.spec.adapter)) or self.spec.source

    @property
    def rater(self) -> str:
        """The rater name its votes are stored under: ``judge:<model>``."""
        return judge_rater(self.model)

    def to_dict(self) -> dict[str, Any]:
        return {"spec": asdict(self.spec), "rubric": self.rubric, "options": asdict(self.options),
                "params": asdict(self.params), "prompt_format": self.prompt_format}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Judge:
        return cls(ModelSpec(**data["spec"]), data["rubric"], LoadOptions(**data["options"]),
                   GenerationParams(**data["params"]), data["prompt_format"])


def fill(rubric: str, question: str, first: str, second: str) -> str:
    """The rubric with the request and the answers in their places, in one pass: text inside an answer that looks
    like a place (``{second}``) stays as written."""
    values = dict(zip(PLACES, (question, first, second)))
    return re.sub("|".join(re.escape(p) for p in PLACES), lambda match: values[match.group(0)], rubric)


def question_text(messages: list[Message], system: str = "") -> str:
    """What the answers reply to, as the judge reads it: the prompt alone, or — with a system prompt or earlier
    turns — the whole conversation, one ``Role: text`` paragraph per turn."""
    if len(messages) == 1 and not system.strip():
        return messages[0]["content"]
    turns = ([("System", system.strip())] if system.strip() else []) + \
        [(m["role"].capitalize(), m["content"]) for m in messages]
    return "\n\n".join(f"{role}: {text}" for role, text in turns)


@dataclass(frozen=True)
class _Mention:
    """A verdict named in a judge's answer: its label, where, and whether in a verdict form or a sentence."""

    label: str
    start: int
    end: int
    explicit: bool


def _mentions(text: str) -> list[_Mention]:
    """Every verdict named in ``text``, in order. An ``a`` followed by a word in lower case is the article
    (``the verdict is a close call``), not the letter A."""
    found = []
    for match in _VERDICT.finditer(text):
        groups = match.groupdict()
        label = next(groups[name] for name in ("tie", "letter", "bracket", "prose_tie", "prose_letter")
                     if groups[name])
        if label == "a" and re.match(r"[ \t]+[a-z]", text[match.end():]):
            continue
        label = "tie" if label.lower() in ("tie", "draw") else label.upper()
        found.append(_Mention(label, match.start(), match.end(), groups["prose_tie"] is None and
                              groups["prose_letter"] is None))
    return found


def _final_lines(text: str, mentions: list[_Mention]) -> list[str] | None:
    """The labels of the lines at the end of ``text`` that are a verdict and nothing else (``Verdict: B``,
    ``**Final verdict:** [[B]].``), last line first; None when the last line with words is not such a line."""
    labels, end = [], len(text)
    for line_start in [m.start() for m in re.finditer(r"^", text, re.MULTILINE)][::-1]:
        line = text[line_start:end]
        end = line_start
        if not line.strip():
            continue
        inside = [m for m in mentions if m.explicit and line_start <= m.start < line_start + len(line)]
        if len(inside) != 1 or not _LINE_PREFIX.fullmatch(text[line_start:inside[0].start]) or \
                not re.fullmatch(r"[\W_]*", text[inside[0].end:line_start + len(line)]):
            break
        labels.append(inside[0].label)
    return labels or None


def parse_verdict(text: str) -> Literal["A", "B", "tie"] | None:
    """The verdict a judge's answer ends on: ``A`` (the first answer shown), ``B`` or ``tie``; None when it has
    none, or several different ones with no final word.

    1. A verdict on a line of its own at the end (``Verdict: B``, ``**Verdict**: **Answer B**``, ``[[B]]``) is the
       final word, as the rubric asks: it wins over what came before (a judge that says A, thinks again and ends
       on ``Verdict: B`` means B). Several such lines at the end must agree: ``Verdict: A`` / ``Verdict: B`` /
       ``Verdict: tie`` one under another is the rubric's list of choices read back, not a verdict (None).
    2. Else every explicit verdict (``Verdict: X``, ``[[X]]``) must name the same one (``Verdict: A. On reflection,
       Verdict: B`` is None); a verdict in a sentence (``the verdict is a draw``) doesn't count against them.
    3. Else every verdict in a sentence (``The verdict is B``) must name the same one."""
    mentions = _mentions(text)
    final = _final_lines(text, mentions)
    if final is not None:
        found = set(final)
    else:
        explicit = [m.label for m in mentions if m.explicit]
        found = set(explicit or [m.label for m in mentions])
    if len(found) != 1:
        return None
    return found.pop()  # type: ignore[return-value]


def reason(text: str) -> str:
    """The judge's reason: its answer up to its first explicit verdict (else its first verdict in a sentence), on
    one line, at most :data:`REASON_CHARACTERS`."""
    mentions = _mentions(text)
    first = next((m for m in mentions if m.explicit), mentions[0] if mentions else None)
    before = text[:first.start] if first else text
    words = " ".join(re.sub(r"[\s*_#>`-]+$", "", before).split())  # markdown left before the verdict goes too
    return words if len(words) <= REASON_CHARACTERS else words[:REASON_CHARACTERS - 1] + "…"


@dataclass(frozen=True)
class Order:
    """The judge's answer to the pair shown in one order."""

    shown: tuple[str, str]
    """Which side came first and which second: ``("a", "b")`` or ``("b", "a")``."""
    text: str
    """The judge's answer, verbatim."""
    verdict: Verdict | None
    """Its verdict about the pair's sides (``A`` read as whichever side was shown first); None: unreadable."""

    def to_dict(self) -> dict[str, Any]:
        return {"shown": list(self.shown), "text": self.text, "verdict": self.verdict}


@dataclass(frozen=True)
class Judgement:
    """A pair judged in both orders; ``winner`` is the verdict both orders gave, else a tie."""

    judge: str
    rubric: str
    orders: tuple[Order, Order]

    @property
    def consistent(self) -> bool:
        """Both orders gave the same, readable verdict (no position bias on this pair)."""
        first, second = (order.verdict for order in self.orders)
        return first is not None and first == second

    @property
    def winner(self) -> Verdict:
        return self.orders[0].verdict if self.consistent else "tie"  # type: ignore[return-value]

    @property
    def rationale(self) -> str:
        """One line for the vote: the judge's reason, or why the pair is a tie whatever it said."""
        unreadable = [order for order in self.orders if order.verdict is None]
        if unreadable:
            shown = " and ".join(" then ".join(s.upper() for s in order.shown) for order in unreadable)
            return f"No readable verdict when shown {shown}: a tie."
        if not self.consistent:
            said = "; ".join(f"shown {' then '.join(s.upper() for s in o.shown)}: {o.verdict}" for o in self.orders)
            return f"The two orders disagree ({said}): a tie."
        return next((reason(o.text) for o in self.orders if reason(o.text)), "")

    def to_dict(self) -> dict[str, Any]:
        """As stored with the vote (:attr:`playground.ratings.store.ComparisonRecord.judgement`)."""
        return {"judge": self.judge, "rubric": self.rubric, "orders": [o.to_dict() for o in self.orders],
                "consistent": self.consistent}


def _ask(cache: ModelCache, judge: Judge, text: str, stop: threading.Event) -> str:
    """The judge's whole answer to ``text`` (one user message), greedy by default."""
    *_, last = answer(cache, judge.spec, judge.options, [{"role": "user", "content": text}],
                      judge.prompt_format, "", judge.params, stop)  # type: ignore[arg-type]
    if last.error:
        raise RuntimeError(f"The judge {judge.spec.name} failed: {last.error}")
    if last.stats.finish_reason == "stopped" or stop.is_set():
        raise JudgeStopped("The judge was stopped before it finished its answer.")
    if last.stats.truncated_tokens:
        raise TooLong(f"The rubric with this pair is {last.stats.truncated_tokens} tokens too long for "
                      f"{judge.spec.name}'s context: it would judge a cut prompt.")
    return last.text


def judge_answers(cache: ModelCache, judge: Judge, prompt: str | list[Message], answer_a: str, answer_b: str,
                  system: str = "", stop: threading.Event | None = None) -> Judgement:
    """Ask ``judge`` which of two answers to ``prompt`` (a text, or a conversation ending with the user's turn) is
    better: once with ``answer_a`` shown first, once with ``answer_b`` first. ``.winner`` is ``a``, ``b`` or
    ``tie`` (the orders disagree, or one had no readable verdict); ``.to_dict()`` is what a judge's vote stores.

    Loads the judge through ``cache`` (kept loaded for the next pair). Raises :class:`TooLong` when the rubric
    with the pair doesn't fit the judge's context, :class:`JudgeStopped` when ``stop`` is set part way, and the
    catalog's and loader's errors (with their messages) when the model can't be loaded or fails."""
    stop = stop or threading.Event()
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    question = question_text(messages, system)
    orders = []
    for shown in (("a", "b"), ("b", "a")):
        answers = {"a": answer_a, "b": answer_b}
        text = _ask(cache, judge, fill(judge.rubric, question, answers[shown[0]], answers[shown[1]]), stop)
        label = parse_verdict(text)
        verdict = None if label is None else "tie" if label == "tie" else shown[0] if label == "A" else shown[1]
        orders.append(Order(shown, text, verdict))  # type: ignore[arg-type]
    return Judgement(judge.model, judge.rubric, (orders[0], orders[1]))


# ---------------------------------------------------------------------------------------------- stored pairs

LEFT_OUT = {"judge": "other AI judges' votes", "repeat": "repeated pairs (asked again to measure consistency)",
            "turns": "multi-turn pairs whose earlier turns differ per side", "empty": "pairs with an empty answer"}
"""Why a stored comparison isn't judged, and how the progress line words it."""


def left_out_reason(record: ComparisonRecord) -> str | None:
    """Why the judge doesn't judge this comparison (a key of :data:`LEFT_OUT`), or None when it does.

    A judge's own votes aren't pairs to judge; a repeat's first showing is judged instead; a pair whose sides
    answered different earlier turns can't be read as two answers to one conversation; an empty answer can't be
    compared fairly (the judge would read a blank as a rubric's gap)."""
    if record.judge_of is not None or is_judge(record.rater):
        return "judge"
    if record.repeat_of is not None:
        return "repeat"
    if record.a.history is not None or record.b.history is not None:
        return "turns"
    if not record.a.response.strip() or not record.b.response.strip():
        return "empty"
    return None


def judge_record(cache: ModelCache, judge: Judge, record: ComparisonRecord,
                 stop: threading.Event | None = None) -> ComparisonRecord:
    """Judge a stored comparison; returns the judge's vote as its own record, ready to save: a copy of the pair with
    a new id, rater ``judge:<model>``, ``judge_of`` the judged id, no batch or position (it never enters a Rate
    queue), the winner, the reason as its rationale and both orders' answers as its ``judgement``.

    Raises ValueError for a comparison the judge leaves out (:func:`left_out_reason`), and what
    :func:`judge_answers` raises."""
    why = left_out_reason(record)
    if why is not None:
        raise ValueError(f"Comparison {record.id} is not judged: it is one of the {LEFT_OUT[why]}.")
    judgement = judge_answers(cache, judge, record.messages, record.a.response, record.b.response,
                              record.system_prompt, stop)
    stamp = now()
    return replace(record, id=new_id(), created_at=stamp, updated_at=None, voted_at=stamp, deleted_at=None,
                   rater=judge.rater, winner=judgement.winner, strength=None, rationale=judgement.rationale,
                   batch_id=None, position=None, skipped=False, repeat_of=None, score_a=None, score_b=None,
                   judge_of=record.id, judgement=judgement.to_dict(), app_version=__version__)

