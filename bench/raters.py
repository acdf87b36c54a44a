"""Benchmark: many raters on one app — 20 people rating a batch at once through the HTTP API, behind a login.

Run:  python -m bench.raters [--raters 20] [--seconds 300] [--batches 1]
Prints Markdown: throughput, p50/p99 latency of opening a pair and of voting, errors, and the check that every
acknowledged vote is in the database.

What runs: ``python app.py --auth USER:PASS --no-prepare`` in its own process, on a fresh data dir holding a Rate batch
whose answers are already there (written with the store before the app starts, as a finished generation leaves
them), so the figures are those of the rating path and not of a model. Each rater is a ``gradio_client`` session of
its own, logged in, in a thread of this process, looping for ``--seconds``: open the batch's next pair
(``/rate_open``), vote on it (``/rate_left``, ``/rate_right``, ``/rate_tie`` or ``/rate_both_bad`` at random; the
answer is the next pair), and so on; beside that loop, from its first pair on, each session calls the Rate tab's
timer (``/rate_tick``) once a second, as every open browser tab does (it renews the claim on the pair on screen and
refreshes the progress line: ~20 calls a second with 20 raters), in a second thread. With ``--batches 1`` (the default) all raters share one batch, as a team rating
one prompt set does: each is shown a pair no other rater has on screen (:mod:`playground.ratings.claims`); when two
do vote on one pair, the first vote lands and the other is told the pair already has a vote (counted as "already
voted", not an error). With ``--batches N`` rater *n* rates batch *n mod N*.

The check afterwards: every vote the app acknowledged (its answer reveals the verdict and the two models) is read
back from the database by its pair — same verdict, the login's name as rater — and the database holds no vote that
was not acknowledged. With ``--auth`` every vote is recorded under the login's user name (the app has one login);
each session also types its own rater name, which the app rightly ignores when there is a login.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import platform
import random
import re
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradio_client import Client

from bench.votes import percentile, record
from playground.core.settings import Settings
from playground.ratings.store import Store

USER, PASSWORD = "team", "bench-password"
CHOICES = ("left", "right", "tie", "both_bad")
VERDICTS = {"left better": "left", "right better": "right", "a tie": "tie", "both bad": "both_bad"}
_PAIR = re.compile(r"Question (\d+):")
_VERDICT = re.compile(r"^Last vote: \*\*(.+?)\*\*")


@dataclass
class Rater:
    """One rater's figures: latencies in ms (of its timer's ticks too), the votes the app acknowledged as (pair
    number, choice on screen), pairs it said already had a vote, votes whose call failed before its answer came
    back (pair, choice: the app may have saved them, unacknowledged), timer ticks the client dropped (its event
    stream ended before the answer: a browser's timer just ticks again a second later), and errors."""

    opens: list[float] = field(default_factory=list)
    votes: list[float] = field(default_factory=list)
    ticks: list[float] = field(default_factory=list)
    acknowledged: list[tuple[int, str]] = field(default_factory=list)
    already_voted: int = 0
    unanswered: list[tuple[int, str]] = field(default_factory=list)
    dropped_ticks: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class Result:
    """What :func:`rate` measured: every rater's figures and the wall time of the timed loop."""

    raters: list[Rater]
    seconds: float

    def all(self, name: str) -> list[float]:
        return [x for r in self.raters for x in getattr(r, name)]

    @property
    def acknowledged(self) -> list[tuple[int, str]]:
        return [a for r in self.raters for a in r.acknowledged]

    @property
    def unanswered(self) -> list[tuple[int, str]]:
        return [a for r in self.raters for a in r.unanswered]


def prepare(data_dir: Path, pairs: int, batches: int) -> list[str]:
    """A fresh data dir with ``batches`` Rate batches of ``pairs`` generated pairs each (pair *i* of the whole set
    asks "Question i:", so an answer on screen names its pair); their ids."""
    settings = Settings(data_dir=data_dir, memory_budget_gb=1)
    settings.ensure_dirs()
    store = Store(settings.ratings_db)
    ids = []
    for b in range(batches):
        batch = store.create_batch(f"bench raters {b}", ["model-a", "model-b"], pairs)
        store.insert_many([record(b * pairs + i, batch_id=batch.id, position=i, source="rate", blind=True,
                                  left_side="ab"[i % 2]) for i in range(pairs)])
        store.set_batch_status(batch.id, "ready")
        ids.append(batch.id)
    return ids


def pair_on_screen(prompt: object, before: int | None) -> int | None:
    """The number of the pair on screen after an answer whose prompt output is ``prompt``: the pair it names; the
    one ``before`` when the app didn't send the prompt again (an update that changes nothing: same pair); None when
    no pair is shown (the batch is done)."""
    if not isinstance(prompt, str):
        return before
    found = _PAIR.search(prompt)
    return int(found.group(1)) if found else None


def rate(url: str, auth: tuple[str, str] | None, batch_ids: list[str], raters: int, seconds: float,
         seed: int = 0) -> Result:
    """``raters`` logged-in sessions rating for ``seconds`` from threads started together: open the next pair,
    vote at random, again; and, in a thread of its own per session once it has a pair, the Rate tab's timer every
    second (a tick that takes longer delays the next). A call that fails is an error (its message kept) and the rater
    carries on; a tick that replaces the pair on screen is an error too (the app must never do that)."""
    sessions = [Client(url, auth=auth, verbose=False) for _ in range(raters)]
    results = [Rater() for _ in range(raters)]
    barrier = threading.Barrier(raters + 1)
    has_pair = [threading.Event() for _ in range(raters)]

    def timed(into: list[float], client: Client, *args: object, api_name: str) -> Any:
        started = time.perf_counter()
        out = client.predict(*args, api_name=api_name)
        into.append((time.perf_counter() - started) * 1000)
        return out

    def loop(n: int, deadline_box: list[float]) -> None:
        client, mine, pick = sessions[n], results[n], random.Random(seed + n)
        batch, shown = batch_ids[n % len(batch_ids)], None
        barrier.wait()
        while time.monotonic() < deadline_box[0]:
            call, voting = "/rate_open", None
            try:
                shown = pair_on_screen(timed(mine.opens, client, batch, api_name=call)[3], shown)
                if shown is None:
                    break  # every pair of the batch is rated
                has_pair[n].set()
                choice = pick.choice(CHOICES)
                call, voting = f"/rate_{choice}", (shown, choice)
                out = timed(mine.votes, client, batch, 0, "", f"rater-{n}", 0, 0, api_name=call)
                verdict = _VERDICT.match(out[-3]) if isinstance(out[-3], str) else None  # not sent: no vote
                voted, shown = shown, pair_on_screen(out[2], shown)
                if verdict:
                    if VERDICTS[verdict.group(1)] != choice:
                        mine.errors.append(f"voted {choice} on pair {voted}, the app says {verdict.group(1)}")
                    mine.acknowledged.append((voted, choice))
                else:
                    mine.already_voted += 1
            except Exception as error:  # noqa: BLE001 - a failed call is a figure of the bench, not its end
                mine.errors.append(f"{call}: {type(error).__name__}: {error}"[:300])
                if voting is not None:
                    mine.unanswered.append(voting)
        has_pair[n].set()  # done: let the timer thread see the deadline

    def timer(n: int, deadline_box: list[float]) -> None:
        """The session's browser timer: ``/rate_tick`` once a second while the rater rates."""
        client, mine, batch = sessions[n], results[n], batch_ids[n % len(batch_ids)]
        has_pair[n].wait()
        while time.monotonic() < deadline_box[0]:
            started = time.monotonic()
            try:
                prompt = timed(mine.ticks, client, batch, api_name="/rate_tick")[2]  # progress, status, prompt
                if isinstance(prompt, str) and prompt:
                    mine.errors.append(f"/rate_tick: replaced the pair on screen with {prompt[:80]!r}")
            except concurrent.futures.CancelledError:
                mine.dropped_ticks += 1  # gradio_client's stream ended under it: a transport hiccup, not the app's
            except Exception as error:  # noqa: BLE001 - as in loop()
                mine.errors.append(f"/rate_tick: {type(error).__name__}: {error}"[:300])
            time.sleep(max(0.0, started + 1 - time.monotonic()))

    deadline = [float("inf")]
    threads = [threading.Thread(target=loop, args=(n, deadline)) for n in range(raters)] + \
        [threading.Thread(target=timer, args=(n, deadline)) for n in range(raters)]
    for t in threads:
        t.start()
    deadline[0] = time.monotonic() + seconds
    started = time.monotonic()
    barrier.wait()
    for t in threads:
        t.join()
    seconds = time.monotonic() - started
    for client in sessions:
        client.close()
    return Result(results, seconds)


def check(store: Store, batch_ids: list[str], result: Result, rater: str) -> list[str]:
    """What is wrong in the database after :func:`rate`, as sentences (none: all is well): each acknowledged vote
    read back by its pair (there, same verdict as the choice on screen, recorded under ``rater``), no pair
    acknowledged twice, and no vote in the batches that was not acknowledged — except one on a pair whose vote call
    failed before its answer came back (saved, but its answer lost on the way: never acknowledged, so not lost)."""
    problems = []
    stored = {int(_PAIR.search(c.prompt).group(1)): c for c in store.comparisons(voted_only=True)
              if c.batch_id in batch_ids}
    counts = Counter(pair for pair, _ in result.acknowledged)
    problems += [f"pair {p} acknowledged {n} times" for p, n in counts.items() if n > 1]
    for pair, choice in result.acknowledged:
        vote = stored.get(pair)
        if vote is None:
            problems.append(f"acknowledged vote on pair {pair} is not in the database")
            continue
        expected = {"left": vote.left_side, "right": "b" if vote.left_side == "a" else "a"}.get(choice, choice)
        if vote.winner != expected or vote.rater != rater:
            problems.append(f"pair {pair}: acknowledged {choice} by {rater}, stored {vote.winner} by {vote.rater}")
    unanswered = {pair for pair, _ in result.unanswered}
    problems += [f"pair {p} has a vote nobody was told about" for p in sorted(set(stored) - set(counts) - unanswered)]
    return problems


def report(result: Result, problems: list[str], args: argparse.Namespace, load: tuple[float, float],
           stored: int) -> str:
    """The Markdown section."""
    opens, votes, ticks, acknowledged = result.all("opens"), result.all("votes"), result.all("ticks"), \
        result.acknowledged
    errors = [e for r in result.raters for e in r.errors]
    already = sum(r.already_voted for r in result.raters)
    dropped = sum(r.dropped_ticks for r in result.raters)
    by_call = ", ".join(f"{n} on {call}" for call, n in Counter(e.split(":")[0] for e in errors).items())
    lines = [f"{args.raters} raters (one `gradio_client` session each, logged in with `--auth`) × "
             f"{result.seconds:.0f} s on {args.batches} batch{'es' if args.batches > 1 else ''} of pre-generated "
             f"pairs · {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()} · "
             f"load average (1 min) before/after {load[0]:.2f}/{load[1]:.2f}\n",
             "| | per second | p50 ms | p99 ms | calls |", "|---|---|---|---|---|",
             f"| open the next pair (`/rate_open`) | {len(opens) / result.seconds:.1f} | {_p(opens, 50)} | "
             f"{_p(opens, 99)} | {len(opens)} |",
             f"| vote + next pair (`/rate_left` …) | {len(votes) / result.seconds:.1f} | {_p(votes, 50)} | "
             f"{_p(votes, 99)} | {len(votes)} |",
             f"| the tab's 1 s timer (`/rate_tick`, every rater) | {len(ticks) / result.seconds:.1f} | {_p(ticks, 50)} | "
             f"{_p(ticks, 99)} | {len(ticks)} |",
             "",
             f"- votes acknowledged: **{len(acknowledged)}** ({len(acknowledged) / result.seconds:.1f} / s); "
             f"answered \"that pair already has a vote\" (another rater's vote landed first): {already}; "
             f"errors: {len(errors)}" + (f" ({by_call}; first: {errors[0]})" if errors else "")
             + (f"; timer ticks dropped by the client: {dropped}" if dropped else ""),
             f"- in the database afterwards: {stored} votes; every acknowledged vote there with its verdict and "
             f"rater: **{'yes' if not problems else 'NO'}**"
             + (f"; {stored - len(acknowledged)} more from vote calls whose answer was lost (of "
                f"{len(result.unanswered)} such calls)" if result.unanswered else "") + (f" — {len(problems)} problems, first: {problems[0]}"
                                                               if problems else "")]
    return "\n".join(lines)


def _p(values: list[float], q: float) -> str:
    return f"{percentile(values, q):.0f}" if values else "–"


def main() -> None:
    from tests.app_process import start_app

    parser = argparse.ArgumentParser(prog="python -m bench.raters", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raters", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=300, help="how long the raters rate")
    parser.add_argument("--batches", type=int, default=1,
                        help="1: all raters on one batch; N: rater n on batch n mod N")
    parser.add_argument("--pairs", type=int, default=20000, help="pairs per batch (more than the raters can rate)")
    args = parser.parse_args()
    if args.raters < 1 or args.batches < 1 or args.seconds <= 0:
        parser.error("--raters and --batches must be at least 1, --seconds positive")
    with tempfile.TemporaryDirectory(prefix="bench-raters-") as temporary:
        data_dir = Path(temporary) / "data"
        *batch_ids, warm_up = prepare(data_dir, args.pairs, args.batches + 1)
        store = Store(Settings(data_dir=data_dir, memory_budget_gb=1).ratings_db)
        app = start_app(data_dir, None, None, "--auth", f"{USER}:{PASSWORD}")
        try:
            rate(app.url, (USER, PASSWORD), [warm_up], 2, 10)  # untimed, on a batch of its own: first calls are slow
            load_before = os.getloadavg()[0]
            result = rate(app.url, (USER, PASSWORD), batch_ids, args.raters, args.seconds)
            load_after = os.getloadavg()[0]
        finally:
            app.stop()
        problems = check(store, batch_ids, result, USER)
        stored = sum(1 for c in store.comparisons() if c.batch_id in batch_ids)
        if store.integrity_check() != "ok":
            problems.append(f"integrity_check: {store.integrity_check()}")
    print(report(result, problems, args, (load_before, load_after), stored))


if __name__ == "__main__":
    main()
