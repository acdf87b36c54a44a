"""Leaderboard: Bradley–Terry ratings with bootstrap intervals, online Elo, win-rate matrix; pure functions.

The Bradley–Terry model is the one the lecture's reward model uses for answers, here used to rank models from
votes: P(i beats j) = 1 / (1 + 10^((R_j − R_i) / 400)), i.e. Elo's scale, ratings anchored to a mean of 1000.
Ratings are the maximum-likelihood fit over all votes at once, so unlike online Elo they don't depend on the order
votes arrived in (online Elo is still given as a second view; Chatbot Arena showed both).

A model's identity is its base source plus its adapter (``"source + adapter"``, the full strings as stored), so
two adapters whose folders share a name, or two local folders named alike, never merge into one rating.
:func:`display_names` turns identities into short labels (``ModelSpec.name``) and falls back to the full
identity wherever two short labels would collide.

Every function takes the frame :func:`battles` returns (one row per counted vote).
"""

from __future__ import annotations

from typing import Iterable, Literal

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit
from scipy.stats import binomtest

from playground.models.catalog import ModelSpec
from playground.ratings.store import ComparisonRecord, Side

BothBad = Literal["tie", "drop"]
"""How a "both are bad" vote counts: as a tie (half a win each way), or not at all."""

BASE = 1000.0  # mean rating, the usual Elo anchor
SCALE = 400 / np.log(10)  # natural-log strength → Elo points (a 400-point gap is 10:1 odds)
L2 = 0.01
"""Default ridge penalty, in votes: a Gaussian prior of std 10 natural units (~1,700 Elo points) on each strength.
Without it a model that won every battle has an infinite MLE; with it the rating is large but finite (5 wins in 5
→ a ~900-point gap), and on a pair with 40 votes it moves the gap by ~0.1 point (1.3 with 4 votes)."""
ADAPTER_SEPARATOR = " + "
COLUMNS = ["model_a", "model_b", "winner", "left_side", "rater", "voted_at"]
TABLE_COLUMNS = ["rank", "model", "rating", "95% CI", "online Elo", "battles", "win rate %"]

# An aggregated cell is (model_a, model_b, outcome); its code is (i * m + j) * 3 + outcome.
_A_WINS, _B_WINS, _TIE = 0, 1, 2


def model_identity(side: Side) -> str | None:
    """The side's model as a rating key: ``source`` or ``source + adapter``; None when the side has no model."""
    if side.model is None:
        return None
    return f"{side.model}{ADAPTER_SEPARATOR}{side.adapter}" if side.adapter else side.model


def display_name(identity: str) -> str:
    """Short label for an identity, as the model dropdowns show it (``gemma-3-270m``, ``base + my-lora``)."""
    source, _, adapter = identity.partition(ADAPTER_SEPARATOR)
    return ModelSpec(source, adapter or None).name


def display_names(identities: Iterable[str]) -> dict[str, str]:
    """Identity → label: the short name, or the full identity where two identities share a short name."""
    identities = list(identities)
    short = {identity: display_name(identity) for identity in identities}
    counts = pd.Series(list(short.values()), dtype=object).value_counts()
    return {identity: name if counts[name] == 1 else identity for identity, name in short.items()}


def battles(records: Iterable[ComparisonRecord]) -> pd.DataFrame:
    """One row per vote that can rate models, oldest vote first.

    Left out: unvoted and deleted comparisons, sides with no model (imported data), and a model against itself
    (which says nothing about its rating). ``voted_at`` falls back to ``created_at`` for imported votes.
    """
    rows = []
    for record in records:
        a, b = model_identity(record.a), model_identity(record.b)
        if record.winner is None or record.deleted_at is not None or a is None or b is None or a == b:
            continue
        rows.append((a, b, record.winner, record.left_side, record.rater, record.voted_at or record.created_at))
    frame = pd.DataFrame(rows, columns=COLUMNS, dtype=object)
    return frame.sort_values("voted_at", kind="stable", ignore_index=True)


def _counted(battles: pd.DataFrame, both_bad: BothBad) -> pd.DataFrame:
    if both_bad not in ("tie", "drop"):
        raise ValueError(f"both_bad must be 'tie' or 'drop', got {both_bad!r}")
    return battles[battles["winner"] != "both_bad"] if both_bad == "drop" else battles


def _codes(battles: pd.DataFrame) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Sorted models, and each vote's model_a and model_b as positions in that list."""
    # factorize hashes in C; a Python set() over a pandas string column is ~10x slower at 100k votes
    names = np.concatenate([battles["model_a"].to_numpy(object), battles["model_b"].to_numpy(object)])
    codes, models = pd.factorize(names, sort=True)
    return list(models), codes[:len(battles)], codes[len(battles):]


def _cells(battles: pd.DataFrame, both_bad: BothBad) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Models, distinct (model_a, model_b, outcome) cell codes, and how many votes fall in each cell.

    Everything downstream works on these few hundred cells instead of the votes, so fitting and resampling cost
    the same for 100 votes or a million."""
    kept = _counted(battles, both_bad)
    models, i, j = _codes(kept)
    m, winner = len(models), kept["winner"].to_numpy(object)
    outcome = np.select([winner == "a", winner == "b"], [_A_WINS, _B_WINS], _TIE)
    counts = np.bincount((i * m + j) * 3 + outcome, minlength=3 * m * m)
    cells = np.flatnonzero(counts)
    return models, cells, counts[cells]


def _wins(cells: np.ndarray, counts: np.ndarray, m: int) -> np.ndarray:
    """Win matrices W[r, i, j] = votes where i beat j (a tie is half a win each way), one per row of ``counts``."""
    pair, outcome = np.divmod(cells, 3)
    i, j = np.divmod(pair, m)
    forward = np.select([outcome == _A_WINS, outcome == _TIE], [1.0, 0.5], 0.0)  # share credited to i over j
    counts = np.atleast_2d(counts).astype(float)
    offset = (np.arange(len(counts)) * m * m)[:, None]  # one bincount for all rounds at once
    target = np.concatenate([offset + i * m + j, offset + j * m + i], axis=1)
    weight = np.concatenate([counts * forward, counts * (1 - forward)], axis=1)
    return np.bincount(target.ravel(), weight.ravel(), minlength=len(counts) * m * m).reshape(len(counts), m, m)


def _objective(theta: np.ndarray, wins: np.ndarray, l2: float) -> tuple[float, np.ndarray]:
    """Penalised negative log-likelihood −Σ W_ij log σ(θ_i − θ_j) + l2/2 |θ|², and its gradient."""
    diff = theta[:, None] - theta[None, :]
    loss = (wins * np.logaddexp(0.0, -diff)).sum() + 0.5 * l2 * theta @ theta
    push = wins * expit(-diff)  # −∂loss/∂diff_ij
    return loss, push.sum(axis=0) - push.sum(axis=1) + l2 * theta


def _fit(wins: np.ndarray, l2: float, start: np.ndarray | None = None) -> np.ndarray:
    """Strengths θ (natural log-odds units, mean 0) maximising the penalised likelihood of one win matrix."""
    total = max(wins.sum(), 1.0)  # the loss per vote keeps L-BFGS's tolerances meaningful at any data size

    def scaled(theta: np.ndarray) -> tuple[float, np.ndarray]:
        loss, grad = _objective(theta, wins, l2)
        return loss / total, grad / total

    if len(wins) == 0:
        return np.zeros(0)
    x0 = np.zeros(len(wins)) if start is None else start
    result = minimize(scaled, x0, jac=True, method="L-BFGS-B", options={"ftol": 1e-13, "gtol": 1e-9})
    # The likelihood ignores a common shift; with l2 = 0 and a disconnected graph each part keeps its start mean.
    return result.x - result.x.mean()


def bradley_terry(battles: pd.DataFrame, both_bad: BothBad = "tie", l2: float = L2) -> pd.Series:
    """Maximum-likelihood Bradley–Terry ratings on the Elo scale (mean 1000), indexed by model identity."""
    models, cells, counts = _cells(battles, both_bad)
    if not models:
        return pd.Series(dtype=float, name="rating", index=pd.Index([], name="model", dtype=object))
    theta = _fit(_wins(cells, counts, len(models))[0], l2)
    return pd.Series(BASE + SCALE * theta, index=pd.Index(models, name="model"), name="rating")


def _resampled(battles: pd.DataFrame, rounds: int, seed: int, both_bad: BothBad,
               l2: float) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Models, full-data win matrix, full-data strengths θ, and θ refitted on each of ``rounds`` resamples.

    Drawing N votes with replacement and counting them per (pair, outcome) cell is the same as drawing the cell
    counts from a multinomial with the observed cell frequencies, so no resampled vote is ever materialised.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    models, cells, counts = _cells(battles, both_bad)
    m, total = len(models), int(counts.sum())
    wins = _wins(cells, counts, m)[0]
    theta = _fit(wins, l2)
    if not models:  # multinomial() refuses zero votes
        return models, wins, theta, np.zeros((rounds, 0))
    draws = np.random.default_rng(seed).multinomial(total, counts / total, size=rounds)
    # Every resample's optimum is near the full-data one: starting there about halves the L-BFGS work.
    thetas = np.array([_fit(resample, l2, theta) for resample in _wins(cells, draws, m)])
    return models, wins, theta, thetas.reshape(rounds, m)


def bootstrap_ratings(battles: pd.DataFrame, rounds: int = 100, seed: int = 0, both_bad: BothBad = "tie",
                      l2: float = L2) -> pd.DataFrame:
    """Bradley–Terry ratings refitted on ``rounds`` resamples of the votes (rows: rounds, columns: models)."""
    models, _, _, thetas = _resampled(battles, rounds, seed, both_bad, l2)
    return pd.DataFrame(BASE + SCALE * thetas, columns=pd.Index(models, name="model", dtype=object))


def bootstrap(battles: pd.DataFrame, rounds: int = 100, seed: int = 0, both_bad: BothBad = "tie",
              l2: float = L2) -> pd.DataFrame:
    """Ratings with 95 % percentile-bootstrap intervals: columns rating, lower, upper, battles (votes counted).

    ``rating`` is the fit on all votes (not the bootstrap mean); same seed, same intervals."""
    models, wins, theta, thetas = _resampled(battles, rounds, seed, both_bad, l2)
    lower, upper = np.percentile(BASE + SCALE * thetas, [2.5, 97.5], axis=0) if models else ([], [])
    return pd.DataFrame({"rating": BASE + SCALE * theta, "lower": lower, "upper": upper,
                         "battles": np.rint((wins + wins.T).sum(axis=1)).astype(int)},
                        index=pd.Index(models, name="model", dtype=object))


def online_elo(battles: pd.DataFrame, k: float = 4.0, base: float = BASE, both_bad: BothBad = "tie") -> pd.Series:
    """Sequential Elo, one update per vote in the frame's order (oldest first from :func:`battles`).

    Recent votes weigh more and the result depends on vote order; K = 4 as Chatbot Arena used, small so the
    ratings drift slowly rather than chase the last few votes.
    """
    kept = _counted(battles, both_bad)
    models, i, j = _codes(kept)
    score = {"a": 1.0, "b": 0.0, "tie": 0.5, "both_bad": 0.5}
    ratings = [base] * len(models)
    # Each update depends on the last, so no vectorising: a loop over Python ints and floats, no pandas in it.
    for a, b, winner in zip(i.tolist(), j.tolist(), kept["winner"].to_numpy(object).tolist()):
        expected = 1 / (1 + 10 ** ((ratings[b] - ratings[a]) / 400))
        delta = k * (score[winner] - expected)
        ratings[a] += delta
        ratings[b] -= delta
    return pd.Series(ratings, index=pd.Index(models, name="model", dtype=object), name="online Elo", dtype=float)


def _matrix(battles: pd.DataFrame, both_bad: BothBad) -> tuple[list[str], np.ndarray]:
    models, cells, counts = _cells(battles, both_bad)
    return models, _wins(cells, counts, len(models))[0]


def win_rate_matrix(battles: pd.DataFrame, both_bad: BothBad = "tie") -> pd.DataFrame:
    """Fraction of their meetings the row model won against the column model (ties half); NaN where never met."""
    models, wins = _matrix(battles, both_bad)
    met = wins + wins.T
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(met > 0, wins / met, np.nan)
    return pd.DataFrame(rate, index=pd.Index(models, name="model"), columns=pd.Index(models, name="opponent"))


def battle_count_matrix(battles: pd.DataFrame) -> pd.DataFrame:
    """Votes between each pair of models, whichever side each was on (symmetric, zero diagonal)."""
    models, wins = _matrix(battles, "tie")
    met = np.rint(wins + wins.T).astype(int)
    return pd.DataFrame(met, index=pd.Index(models, name="model"), columns=pd.Index(models, name="opponent"))


def position_bias(battles: pd.DataFrame) -> dict[str, float | int]:
    """How often the answer shown on the left won a decisive vote; 0.5 means no position bias.

    ``p_value`` is the two-sided binomial test of ``left_win_rate`` = 0.5 (NaN with no decisive votes).
    """
    winner = battles["winner"]
    decisive = int(winner.isin(["a", "b"]).sum())
    left = int((winner == battles["left_side"]).sum())
    rate = left / decisive if decisive else float("nan")
    p_value = binomtest(left, decisive).pvalue if decisive else float("nan")
    return {"left_wins": left, "right_wins": decisive - left, "ties": int((winner == "tie").sum()),
            "both_bad": int((winner == "both_bad").sum()), "left_win_rate": rate, "p_value": float(p_value)}


def votes_per_rater(battles: pd.DataFrame) -> pd.Series:
    """Votes by each rater, most first (an empty name is a vote cast without a rater name)."""
    counts = battles.groupby("rater").size().sort_index()
    return counts.sort_values(ascending=False, kind="stable").rename("votes").astype(int)


def leaderboard_table(battles: pd.DataFrame, rounds: int = 100, seed: int = 0,
                      both_bad: BothBad = "tie") -> pd.DataFrame:
    """The table to show: rank, model, rating, 95 % CI, online Elo, battles, win rate %, best first.

    Rank is 1 + the number of models whose interval lies entirely above this one's (Chatbot Arena's rule): models
    the votes can't yet tell apart share a rank instead of being ordered by noise.
    """
    table = bootstrap(battles, rounds, seed, both_bad)
    if table.empty:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    table = table.sort_values("rating", ascending=False, kind="stable")
    models, wins = _matrix(battles, both_bad)
    win_rate = pd.Series(wins.sum(axis=1) / (wins + wins.T).sum(axis=1), index=models)
    upper, lower = table["upper"].to_numpy(), table["lower"].to_numpy()
    return pd.DataFrame({
        "rank": 1 + (lower[None, :] > upper[:, None]).sum(axis=1),
        "model": table.index.map(display_names(table.index)),
        "rating": table["rating"].round().astype(int),
        # clipped at 0: a percentile interval can, rarely, sit wholly on one side of the full-data estimate
        "95% CI": [f"−{max(r - lo, 0):.0f} / +{max(hi - r, 0):.0f}" for r, lo, hi in zip(table["rating"], lower, upper)],
        "online Elo": online_elo(battles, both_bad=both_bad).reindex(table.index).round().astype(int),
        "battles": table["battles"],
        "win rate %": (100 * win_rate.reindex(table.index)).round(1),
    }).reset_index(drop=True)
