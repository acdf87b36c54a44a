"""Benchmark: how long a vote takes to be durable, with 8 clients voting at once.

Run:  python -m bench.votes [--clients 8] [--votes 50]
Prints a Markdown table. Two measurements:

1. The store (`Store.vote`, one transaction per vote, ``synchronous=FULL`` so the vote is on disk when it returns)
   from 8 threads at once, against the same store with ``synchronous=NORMAL`` measured in the same run — the
   cheaper setting that can lose the last votes on a power cut. The ratio is what durability costs.
2. The whole path a user takes in the Rate tab: 8 ``gradio_client`` sessions against ``python app.py`` running in
   its own process, each pressing
   "Left is better" (``/rate_left``: HTTP, Gradio's queue, the vote, and fetching the next pair) on a batch filled
   beforehand, so no model runs. Baselines in the same run: the same 8 clients calling ``/rate_open`` (the same
   HTTP/queue path and the same reads, without the write) and ``/stop`` (an endpoint that does nothing).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from gradio_client import Client

from playground.core.settings import Settings
from playground.ratings.store import ComparisonRecord, Side, Store
from tests.app_server import free_port

ROOT = Path(__file__).resolve().parents[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def record(i: int, **fields) -> ComparisonRecord:
    """A realistic comparison: a short prompt and two answers of a few hundred characters."""
    return ComparisonRecord(messages=[{"role": "user", "content": f"Question {i}: explain something."}],
                            a=Side("model-a", response="An answer. " * 40, params={"seed": i}),
                            b=Side("model-b", adapter="/adapters/x", response="Another answer. " * 30), **fields)


def in_threads(clients: int, work: Callable[[int], list[float]]) -> list[float]:
    """Run ``work(client)`` in ``clients`` threads started together; all latencies in milliseconds."""
    results: list[list[float]] = [[] for _ in range(clients)]
    barrier = threading.Barrier(clients)

    def run(n: int) -> None:
        barrier.wait()
        results[n] = work(n)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [x for r in results for x in r]


class NormalSyncStore(Store):
    """The baseline: the same store with synchronous=NORMAL (durable against app crashes, not power cuts)."""

    def _connect(self):  # noqa: ANN202 - same contract as Store._connect
        parent = super()._connect()

        class Wrapped:
            def __enter__(self_inner):
                db = parent.__enter__()
                db.execute("PRAGMA synchronous=NORMAL")
                return db

            def __exit__(self_inner, *exc):
                return parent.__exit__(*exc)

        return Wrapped()


def store_latencies(store: Store, clients: int, votes: int) -> list[float]:
    def work(n: int) -> list[float]:
        times = []
        for i in range(votes):
            pending = record(n * votes + i)
            started = time.perf_counter()
            store.vote(pending, "a", rater=f"rater{n}")
            times.append((time.perf_counter() - started) * 1000)
        return times

    return in_threads(clients, work)


def app_latencies(folder: Path, clients: int, votes: int, settle: float = 30) -> tuple[list[float], list[float], list[float]]:
    settings = Settings(data_dir=folder, memory_budget_gb=1)
    settings.ensure_dirs()
    store = Store(settings.ratings_db)
    batches = []
    for n in range(clients):  # one batch per client, so they never vote on the same pair
        batch = store.create_batch(f"bench {n}", ["model-a", "model-b"], votes)
        store.insert_many([record(i, batch_id=batch.id, position=i, source="rate", blind=True) for i in range(votes)])
        store.set_batch_status(batch.id, "ready")
        batches.append(batch.id)
    port = free_port()
    server = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--data-dir", str(folder)], cwd=ROOT,
                              env=dict(os.environ, HF_HUB_OFFLINE="1"), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        sessions = [connect(f"http://127.0.0.1:{port}/") for _ in range(clients)]
        time.sleep(settle)  # the app imports torch/transformers in the background after start; let it finish

        def timed(call: Callable[[], object]) -> float:
            started = time.perf_counter()
            call()
            return (time.perf_counter() - started) * 1000

        def opening(n: int) -> list[float]:
            return [timed(lambda: sessions[n].predict(batches[n], api_name="/rate_open")) for _ in range(votes)]

        def voting(n: int) -> list[float]:
            return [timed(lambda: sessions[n].predict(batches[n], 0, "", f"r{n}", api_name="/rate_left"))
                    for _ in range(votes)]

        def nothing(n: int) -> list[float]:
            return [timed(lambda: sessions[n].predict(api_name="/stop")) for _ in range(votes)]

        floor = in_threads(clients, nothing)
        baseline = in_threads(clients, opening)
        ours = in_threads(clients, voting)
    finally:
        server.terminate()
        server.wait()
    assert store.count() == clients * votes, "every vote must be stored"
    return ours, baseline, floor


def connect(url: str, timeout: float = 120) -> Client:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return Client(url, verbose=False)
        except Exception:  # noqa: BLE001 - the server is still starting
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def row(label: str, values: list[float]) -> str:
    return f"| {label} | {statistics.median(values):.1f} | {percentile(values, 99):.1f} | {len(values)} |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--votes", type=int, default=50, help="votes per client")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        full = store_latencies(Store(Path(folder) / "full.sqlite3"), args.clients, args.votes)
        normal = store_latencies(NormalSyncStore(Path(folder) / "normal.sqlite3"), args.clients, args.votes)
        ours, baseline, floor = app_latencies(Path(folder) / "app", args.clients, args.votes)
    print(f"{args.clients} clients × {args.votes} votes · {platform.machine()} · {platform.python_version()}\n")
    print("| | p50 ms | p99 ms | votes |\n|---|---|---|---|")
    print(row("store, synchronous=FULL (ours)", full))
    print(row("store, synchronous=NORMAL (baseline)", normal))
    print(row("app `/rate_left` (vote + next pair)", ours))
    print(row("app `/rate_open` (same path, no write; baseline)", baseline))
    print(row("app `/stop` (does nothing; the HTTP + client floor)", floor))
    print(f"\nratio FULL / NORMAL p50: {statistics.median(full) / statistics.median(normal):.2f}")
    print(f"ratio vote / open p50: {statistics.median(ours) / statistics.median(baseline):.2f}")


if __name__ == "__main__":
    main()
