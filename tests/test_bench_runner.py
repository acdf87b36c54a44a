"""``python -m bench``: each benchmark's output lands between its markers, prose stays, the summary lists ratios."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import BENCHMARKS, ratios, replace_block, rewrite

ROOT = Path(__file__).resolve().parents[1]

DOC = """# Benchmarks

<!-- bench:machine -->
old machine
<!-- /bench:machine -->

## Leaderboard (`bench/leaderboard.py`)

Prose a person wrote, kept.

<!-- bench:leaderboard -->
| old | table |
<!-- /bench:leaderboard -->

More prose, kept.
"""


def test_figures_replace_only_their_block_and_new_sections_are_added():
    results = {"leaderboard": ("python -m bench.leaderboard", "| ours | 0.3 s |\nratio ours / naive: **0.02**",
                               12.0),
               "reward": ("python -m bench.reward", "| ours | 120 tok/s |\nratio ours / plain: tokens/s **1.4**", 600)}
    text = rewrite(DOC, results, quick=False, header="- CPU: test")
    assert "Prose a person wrote, kept." in text and "More prose, kept." in text
    assert "| old | table |" not in text and "| ours | 0.3 s |" in text and "old machine" not in text
    assert "- CPU: test" in text
    assert text.count("<!-- bench:reward -->") == 1 and "## Reward-model training throughput" in text
    summary = text.split("<!-- bench:summary -->")[1].split("<!-- /bench:summary -->")[0]
    assert "ratio ours / naive: **0.02**" in summary and "ratio ours / plain: tokens/s **1.4**" in summary
    assert rewrite(text, results, quick=False, header="- CPU: test").count("<!-- bench:summary -->") == 1


def test_ratio_lines_are_found():
    assert ratios("x\nratio ours / plain: **1.2**\n- Ratio (ours / floor): 0.99\n") == [
        "ratio ours / plain: **1.2**", "Ratio (ours / floor): 0.99"]
    assert replace_block("a", "x", "body", "X") == "a\n\n## X (`bench/x.py`)\n\n<!-- bench:x -->\nbody\n<!-- /bench:x -->\n"


def test_every_benchmark_module_exists_and_the_cli_checks_its_choices():
    for benchmark in BENCHMARKS:
        assert (ROOT / "bench" / f"{benchmark.name}.py").is_file(), benchmark.name
    done = subprocess.run([sys.executable, "-m", "bench", "--only", "nope"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and "unknown benchmark" in done.stderr


@pytest.mark.slow
def test_a_quick_run_writes_a_document(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bench", "--only", "leaderboard", "--quick", "--dry-run"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "<!-- bench:leaderboard -->" in done.stdout and "ratio" in done.stdout.lower()
    assert "CPU:" in done.stdout
