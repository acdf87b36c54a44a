"""BIG-Bench tasks, base vs an SFT run's adapter: ``python -m bench.bigbench_tasks ARCHIVE RUN --tasks a,b``.

Run:  HF_HUB_OFFLINE=1 python -m bench.bigbench_tasks bigbench-1.0.0.tar.gz RUN_NAME
          [--tasks object_counting,odd_one_out] [--examples 30]

``ARCHIVE`` is the bigbench 1.0.0 source distribution (``pip download --no-deps --no-binary :all:
bigbench==1.0.0``), read with tarfile, not installed; ``RUN_NAME`` a finished SFT run in the data dir (e.g. the one
``python -m bench.heldout`` trained). Each task is scored as :mod:`playground.data.bigbench` scores it (generative: exact
match; multiple choice: the likeliest choice), a seeded sample of ``--examples`` per task, and printed as the held-out
table (95 % bootstrap intervals, paired for the change).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import pandas as pd

DEFAULT_TASKS = "object_counting,word_unscrambling,odd_one_out,logical_deduction/three_objects"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bigbench_tasks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("archive", type=Path)
    parser.add_argument("run", help="a finished SFT run's name in the data dir")
    parser.add_argument("--tasks", default=DEFAULT_TASKS, help="comma-separated task names")
    parser.add_argument("--examples", type=int, default=30, help="seeded sample per task (0 = all)")
    args = parser.parse_args(argv)

    from playground.core.settings import Settings
    from playground.data import bigbench, evaluation
    from playground.models.catalog import list_models, resolve_choice, spec_for_folder
    from playground.models.loading import ModelCache
    from playground.runs.jobs import Jobs

    settings = Settings()
    folder = Jobs(settings, poll=False).folder(args.run)
    tuned = spec_for_folder(folder.adapter)
    base = resolve_choice(tuned.source, list_models(settings))
    names = [name.strip() for name in args.tasks.split(",") if name.strip()]
    tasks = bigbench.load_archive_tasks(args.archive, names)
    cache = ModelCache(settings)
    started, load_before = time.monotonic(), os.getloadavg()[0]
    rows, kinds = [], {}
    for task in tasks:
        _, _, table = bigbench.compare_on_task(cache, base, tuned, task, args.examples,
                                               tuned.trained_format or "instruction")
        rows.append(table.iloc[0])
        kinds[task.name] = task.kind
        print(f"# {task.name}: {table.iloc[0]['base %']} → {table.iloc[0]['tuned %']}", file=sys.stderr, flush=True)
    table = pd.DataFrame(rows).reset_index(drop=True)
    print(f"Base `{base.name}` vs `{tuned.name}`, {args.examples or 'all'} examples per task (seeded sample), prompt "
          f"format `{tuned.trained_format or 'instruction'}` for both; {time.monotonic() - started:.0f} s, load "
          f"average {load_before:.2f} → {os.getloadavg()[0]:.2f}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Kinds: "
          + ", ".join(f"{name} {kind.replace('_', ' ')}" for name, kind in kinds.items()) + "\n")
    lines = evaluation.markdown_table(table).splitlines()
    print("\n".join(line for line in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
