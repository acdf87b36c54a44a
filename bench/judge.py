"""Benchmark: the AI judge on pairs whose better answer is known — the bundled preference pairs (each rejected answer
has a labelled flaw), judged in both orders with the Judge tab's default rubric.

Run:  HF_HUB_OFFLINE=1 python -m bench.judge [--model smollm2-135m-instruct] [--pairs 20] [--tokens 120]

For each pair: the judge's answer in each order (through :func:`playground.ratings.judge.judge_answers`, greedy,
the model on the backend Compare would use), whether each order's verdict was readable, whether the two orders
agreed (position consistency), and whether the final verdict — a disagreement or an unreadable order is a tie —
picked the labelled better answer. Baseline in the same run: a judge that always names the answer it read first
(the strongest position bias), which the both-orders rule turns into all ties. Prints Markdown.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAIRS = ROOT / "assets" / "datasets" / "preferences.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="", help="the judge: any model Compare offers (default: the app's right "
                                                    "pane, the instruction-tuned default)")
    parser.add_argument("--pairs", type=int, default=20, help="the first N bundled pairs")
    parser.add_argument("--tokens", type=int, default=120, help="most tokens of each judge answer")
    args = parser.parse_args()

    from playground.core.settings import Settings
    from playground.models.catalog import list_models, resolve_choice
    from playground.models.loading import ModelCache
    from playground.ratings.judge import JUDGE_PARAMS, Judge, judge_answers

    settings = Settings()
    model = args.model or settings.model_b
    judge = Judge(resolve_choice(model, list_models(settings)), params=replace(JUDGE_PARAMS, max_new_tokens=args.tokens))
    cache = ModelCache(settings)
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()][: args.pairs]
    started = time.monotonic()
    readable = consistent = right = wrong = 0
    examples = []
    for row in rows:
        verdict = judge_answers(cache, judge, row["prompt"], row["chosen"], row["rejected"])
        readable += sum(order.verdict is not None for order in verdict.orders)
        consistent += verdict.consistent
        right += verdict.winner == "a"
        wrong += verdict.winner == "b"
        if len(examples) < 2:
            examples.append((row["prompt"], verdict.orders[0].text))
    seconds = time.monotonic() - started
    n = len(rows)
    print(f"Judge `{judge.model}`, default rubric, greedy, ≤ {args.tokens} tokens an answer; the first {n} bundled "
          f"pairs (chosen = the labelled better answer), each in both orders; {seconds:.0f} s.\n")
    print("| judge | readable verdicts (of 2 per pair) | both orders agree | picks the better answer | picks the "
          "worse | tie |\n|---|---|---|---|---|---|")
    print(f"| `{judge.model}` | {readable} / {2 * n} | {consistent} / {n} | {right} | {wrong} | {n - right - wrong} |")
    print(f"| always names the first answer shown (baseline) | {2 * n} / {2 * n} | 0 / {n} | 0 | 0 | {n} |")
    print("\nWhat it wrote, first order, verbatim:\n")
    for prompt, text in examples:
        print(f"- to “{' '.join(prompt.split())[:80]}”: `{' '.join(text.split())[:200]}`")


if __name__ == "__main__":
    main()
