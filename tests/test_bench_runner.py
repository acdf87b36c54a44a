"""``python -m bench``: each benchmark's output lands between its markers, prose stays, the summary lists ratios."""

from __future__ import annotations

import re
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
    assert ratios("generation: 64 tokens\n1 iteration\n") == []
    assert replace_block("a", "x", "body", "X") == "a\n\n## X (`bench/x.py`)\n\n<!-- bench:x -->\nbody\n<!-- /bench:x -->\n"


def test_the_document_marks_every_benchmark_once():
    """docs/BENCHMARKS.md holds one marked block per benchmark (and machine, summary): a rewrite replaces it in
    place instead of appending a second section."""
    text = (ROOT / "docs" / "BENCHMARKS.md").read_text()
    for name in ["machine", "summary"] + [b.name for b in BENCHMARKS]:
        opening, closing = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
        assert text.count(opening) == 1 and text.count(closing) == 1, name
        assert text.index(opening) < text.index(closing), name
        assert f"`bench/{name}.py`" in text.split(opening)[0].rsplit("\n## ", 1)[-1] or name in ("machine", "summary")
    assert set(re.findall(r"<!-- bench:([\w-]+) -->", text)) == {"machine", "summary"} | {b.name for b in BENCHMARKS}


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
