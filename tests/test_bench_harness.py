"""bench/harness.py: the training benches' scripts and report, and a child process that fails."""

from __future__ import annotations

import argparse
import platform

import pytest

from bench import harness, reward, sft
from bench.__main__ import ratios


@pytest.mark.parametrize("bench", [sft.SFT, reward.REWARD])
def test_each_plain_script_runs_with_the_harness_timing_around_it(bench):
    assert "class Timing" not in bench.plain_script and "callbacks=[Timing()]" in bench.plain_script
    compile(harness.PLAIN_PROLOGUE + bench.plain_script + harness.PLAIN_EPILOGUE, "train_plain.py", "exec")


def _run(rate: float, peak: float) -> dict:
    return {"tokens_per_s": rate, "s_per_step": 2.0, "peak_mb": peak, "first_step_s": 10.0, "total_tokens": 900,
            "first_loss": 2.5, "final_loss": 2.25, "load": [1.0, 1.5]}


def test_the_report_gives_medians_ratios_and_each_run(capsys):
    args = argparse.Namespace(model="tiny", steps=3, warmup=1)
    runs = {"plain-matched": [_run(100.0, 1000.0)], "ours": [_run(110.0, 900.0), _run(130.0, 900.0)]}
    harness.report(reward.REWARD, runs, args, {}, "2.x", "batch 4 × accumulation 2 pairs", losses=True)
    out = capsys.readouterr().out
    assert out.startswith(f"model tiny · 3 timed steps after 1 warm-up · batch 4 × accumulation 2 pairs · "
                          f"{platform.machine()}, ")
    assert "| playground run (`Jobs` → `python -m playground.train reward`) | 120.0 | 2.00 | 900 | 10.0 | [900] | " \
           "2.2500 |" in out
    assert ratios(out) == ["ratio ours / plain-matched: tokens/s **1.200**, peak RSS 0.900"]
    assert "ours tokens/s per run: 110.0, 130.0; loss step 1 → last: 2.5000 → 2.2500, 2.5000 → 2.2500; " \
           "load average (1 min) before/after each run: 1.00/1.50, 1.00/1.50" in out
    harness.report(sft.SFT, runs, args, {}, "2.x", "batch 4 × accumulation 2", losses=False)
    assert "ours tokens/s per run: 110.0, 130.0; load average (1 min)" in capsys.readouterr().out


def test_a_child_that_fails_says_which_and_why():
    with pytest.raises(RuntimeError, match=r"^ours failed: .*No module named bench\.nothing_here"):
        harness.run_child("bench.nothing_here", ["ours", "{}"], "ours")
