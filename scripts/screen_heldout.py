"""Screen the candidate held-out families on the base model: which tasks can it do once the task is made clear?

Run:  HF_HUB_OFFLINE=1 python scripts/screen_heldout.py [--model gemma-3-270m] [--data-dir DIR]
      then  python scripts/make_instructions.py   (writes assets/datasets/heldout.jsonl from the families it passed)

The rule (``make_instructions.SCREEN_RULE``): a candidate family is held out when the base model, shown a few solved
examples of the family as plain text, answers at least half of the family's held-out items exactly. Only the base
model is asked — never a tuned one — so the choice can't lean towards the families tuning happens to help. Each
answer is greedy, up to the end of its first line, through the same path the Runs tab's Evaluate takes
(:func:`playground.data.evaluation.greedy_answer`), and checked with the same exact first-line check.

Writes ``assets/datasets/heldout_screen.json``: the rule, the model, the date, and per family its cluster, the
number right of the items asked and every answer.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _make_instructions():
    spec = importlib.util.spec_from_file_location("make_instructions", ROOT / "scripts" / "make_instructions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gemma-3-270m", help="the base model (a catalog name or a folder)")
    parser.add_argument("--data-dir", type=Path, default=None, help="the app's data dir (imported models)")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: the bundled screen file)")
    parser.add_argument("--families", default="", help="comma-separated candidate families (default: all)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))

    from playground.core.settings import Settings
    from playground.data.evaluation import HeldoutExample, greedy_answer, is_correct
    from playground.models.catalog import list_models, resolve_choice
    from playground.models.loading import ModelCache

    make = _make_instructions()
    chosen = [f.strip() for f in args.families.split(",") if f.strip()] or list(make.HELDOUT_TEMPLATES)
    unknown = sorted(set(chosen) - set(make.HELDOUT_TEMPLATES))
    if unknown:
        parser.error(f"not a candidate family: {', '.join(unknown)}")
    if args.families and args.out is None:
        parser.error("--families writes a partial screen: give --out too (the bundled file must hold every family)")
    settings = Settings(data_dir=args.data_dir)
    settings.ensure_dirs()
    cache = ModelCache(settings)
    spec = resolve_choice(args.model, list_models(settings))
    started = time.monotonic()
    families = {}
    for family in chosen:
        answers = []
        for index, (prompt, answer) in enumerate(make.screen_prompts(family)):
            example = HeldoutExample(f"{family}-{index}", family, prompt, "", answer, "exact")
            output = greedy_answer(cache, spec, example, "plain")
            answers.append({"prompt": prompt, "answer": answer, "output": output,
                            "correct": is_correct(output, example)})
        right = sum(a["correct"] for a in answers)
        families[family] = {"cluster": make.CLUSTERS[family], "n": len(answers), "correct": right,
                            "accuracy": right / len(answers), "answers": answers}
        print(f"{family:20s} {right:2d}/{len(answers)}  {'held out' if right / len(answers) >= make.SCREEN_THRESHOLD else 'dropped'}",
              flush=True)
    loaded = cache.get(spec)
    out = args.out or make.SCREEN
    out.write_text(json.dumps({
        "rule": make.SCREEN_RULE, "model": spec.name, "backend": getattr(loaded, "backend", ""),
        "shots": make.SCREEN_SHOTS, "threshold": make.SCREEN_THRESHOLD,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "seconds": round(time.monotonic() - started),
        "families": families}, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out} in {time.monotonic() - started:.0f} s; held out: {', '.join(make.held_out_families(out))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
