"""Benchmark: bootstrap confidence intervals for the leaderboard, multinomial cell counts vs resampling vote rows.

Run:  python -m bench.leaderboard [--votes 100000] [--models 20] [--rounds 100] [--repeats 3]
Synthetic votes over models with known true ratings (seeded). All three bootstraps refit the same Bradley–Terry
(``playground.ratings.leaderboard``); they differ only in how a resample is made:
- ours: draw the counts of each distinct (pair, outcome) cell from a multinomial (``bootstrap``);
- naive, as usually written: draw N row indices with replacement with numpy, take those rows of the votes frame,
  re-aggregate, refit from scratch (``bradley_terry`` on the resample);
- naive on integer codes: the same row resampling on votes encoded once as cell codes, re-aggregated with
  ``np.bincount`` and refitted from the same warm start as ours, so only "rows vs multinomial" differs.
Target: 100,000 votes, 20 models, 100 rounds in ≤ 2 s. Prints a Markdown table and one ``ratio`` line per
baseline (ours / baseline seconds: below 1 is faster); times are best of ``--repeats``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import pandas as pd
import scipy

from playground.ratings import leaderboard
from playground.ratings.leaderboard import BASE, COLUMNS, SCALE, bootstrap, bradley_terry, leaderboard_table

TIE_SHARE = 0.2
"""A vote is not decisive with probability 2·TIE_SHARE·min(p, 1 − p) (3/4 "tie", 1/4 "both_bad"), taken evenly
from both wins, so its expected score (ties half) stays exactly p and ties-as-half-wins Bradley–Terry is a
consistent estimator of the true ratings."""


def synthetic_votes(votes: int, models: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """``votes`` battles between random pairs of ``models`` models with true ratings ~ N(1000, 150²), in the
    :func:`playground.ratings.leaderboard.battles` format, and the true ratings (mean exactly 1000)."""
    rng = np.random.default_rng(seed)
    names = np.array([f"model-{n:02d}" for n in range(models)], dtype=object)
    truth = rng.normal(0, 150, models)
    truth = BASE + truth - truth.mean()
    i = rng.integers(models, size=votes)
    j = (i + rng.integers(1, models, size=votes)) % models  # any other model
    p = 1 / (1 + 10 ** ((truth[j] - truth[i]) / 400))
    tie = 2 * TIE_SHARE * np.minimum(p, 1 - p)
    u = rng.random(votes)
    winner = np.select([u < p - tie / 2, u < p - tie / 4, u < p + tie / 2], ["a", "both_bad", "tie"], "b")
    frame = pd.DataFrame({
        "model_a": names[i], "model_b": names[j], "winner": winner.astype(object),
        "left_side": np.where(rng.random(votes) < 0.5, "a", "b").astype(object),
        "rater": rng.choice(np.array(["ana", "bo", "cy"], dtype=object), size=votes),
        "voted_at": pd.Series(pd.date_range("2026-11-01", periods=votes, freq="s")).dt.strftime("%Y-%m-%dT%H:%M:%S"),
    }, columns=COLUMNS)
    return frame, pd.Series(truth, index=names, name="truth")


def interval(samples: pd.DataFrame) -> pd.DataFrame:
    """95 % percentile interval of bootstrap ratings (rows: rounds, columns: models), as ``bootstrap`` computes it."""
    lower, upper = np.percentile(samples.to_numpy(), [2.5, 97.5], axis=0)
    return pd.DataFrame({"lower": lower, "upper": upper}, index=samples.columns)


def naive_frame_bootstrap(battles: pd.DataFrame, rounds: int, seed: int) -> pd.DataFrame:
    """Baseline as usually written: resample rows of the votes frame, then aggregate and refit each from scratch."""
    rng = np.random.default_rng(seed)
    return interval(pd.DataFrame([bradley_terry(battles.iloc[rng.integers(len(battles), size=len(battles))])
                                  for _ in range(rounds)]))


def naive_codes_bootstrap(battles: pd.DataFrame, rounds: int, seed: int) -> pd.DataFrame:
    """Baseline with the same fit and warm start as ours: only the resampling (N row indices) differs."""
    models, cells, counts = leaderboard._cells(battles, "tie")
    m = len(models)
    vote_cells = np.repeat(cells, counts)  # every vote as its cell code (order is irrelevant to resampling)
    start = leaderboard._fit(leaderboard._wins(cells, counts, m)[0], leaderboard.L2)
    rng, thetas = np.random.default_rng(seed), []
    for _ in range(rounds):
        resample = vote_cells[rng.integers(len(vote_cells), size=len(vote_cells))]
        resampled_counts = np.bincount(resample, minlength=3 * m * m)
        wins = leaderboard._wins(np.arange(3 * m * m), resampled_counts, m)[0]
        thetas.append(leaderboard._fit(wins, leaderboard.L2, start))
    return interval(pd.DataFrame(BASE + SCALE * np.array(thetas), columns=models))


def best_of(repeats: int, methods: dict) -> dict[str, tuple[float, object]]:
    """Best time and result of each method; the methods take turns, so a noisy spell hits all of them alike."""
    best: dict[str, tuple[float, object]] = {}
    for _ in range(repeats):
        for name, work in methods.items():
            started = time.perf_counter()
            result = work()
            seconds = time.perf_counter() - started
            best[name] = min(best.get(name, (seconds, result)), (seconds, result), key=lambda pair: pair[0])
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--votes", type=int, default=100_000)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    battles, truth = synthetic_votes(args.votes, args.models, args.seed)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}, "
          f"scipy {scipy.__version__}, pandas {pd.__version__}")
    print(f"{args.votes:,} votes over {args.models} models, {args.rounds} bootstrap rounds, best of {args.repeats}\n")

    best = best_of(args.repeats, {
        "naive: resample frame rows, re-aggregate, refit": lambda: naive_frame_bootstrap(battles, args.rounds, args.seed),
        "naive on integer codes: resample rows, bincount, refit":
            lambda: naive_codes_bootstrap(battles, args.rounds, args.seed),
        "ours: multinomial cell counts, refit": lambda: bootstrap(battles, rounds=args.rounds, seed=args.seed),
        "whole leaderboard_table (bootstrap + online Elo + win rates)":
            lambda: leaderboard_table(battles, rounds=args.rounds, seed=args.seed),
    })
    table_s, _ = best.pop("whole leaderboard_table (bootstrap + online Elo + win rates)")
    ours_s, ours = best["ours: multinomial cell counts, refit"]
    print("| bootstrap | seconds | ours / this | mean 95 % CI width (Elo) |\n|---|---|---|---|")
    for name, (seconds, result) in best.items():
        print(f"| {name} | {seconds:.2f} | **{ours_s / seconds:.3f}** | {(result.upper - result.lower).mean():.1f} |")
    print(f"\nWhole leaderboard_table (bootstrap + online Elo + win rates): {table_s:.2f} s\n")
    for name, label in (("naive: resample frame rows, re-aggregate, refit", "naive (frame rows)"),
                        ("naive on integer codes: resample rows, bincount, refit", "naive on integer codes")):
        print(f"- ratio ours / {label}: seconds **{ours_s / best[name][0]:.3f}** "
              f"({ours_s:.2f} s vs {best[name][0]:.2f} s, {args.rounds} rounds)")

    error = ours["rating"] - truth.reindex(ours.index)
    covered = ((ours["lower"] <= truth) & (truth <= ours["upper"])).mean()
    print(f"\nFitted vs true ratings: max |error| {error.abs().max():.1f} Elo, RMS {np.sqrt((error ** 2).mean()):.1f} "
          f"Elo; true rating inside its 95 % interval for {covered:.0%} of models "
          f"(true ratings span {truth.min():.0f}–{truth.max():.0f}).")


if __name__ == "__main__":
    main()
