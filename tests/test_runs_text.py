"""The Runs tab's speed and memory line, from the metrics rows a run logs (GPU peaks per logging interval)."""

from __future__ import annotations

from playground.ui.runs_tab import memory_text, speed_text


def test_gpu_memory_shows_the_last_interval_and_the_whole_runs_peaks():
    rows = [{"step": 1, "tokens_per_s": 900.0, "gpu_allocated_gb": 5.5, "gpu_reserved_gb": 6.25},
            {"step": 2, "tokens_per_s": 1000.0, "gpu_allocated_gb": 4.0, "gpu_reserved_gb": 6.0},
            {"step": 2, "eval_loss": 1.0}]  # an eval row logs no speed
    text = speed_text(rows)
    assert text.startswith("1000 tokens/s")
    assert "at step 2: peak 4.00 GiB allocated, 6.00 GiB reserved (whole run: 5.50 / 6.25)" in text
    assert "CUDA context" in text


def test_a_cpu_run_shows_no_memory_and_an_older_run_its_single_peak():
    assert speed_text([{"step": 1, "tokens_per_s": 50.0}]) == "50 tokens/s (training tokens, no padding)"
    assert memory_text([{"step": 1, "gpu_memory_gb": 3.0}, {"step": 2, "gpu_memory_gb": 3.5}]) == \
        "peak GPU memory 3.50 GiB allocated"  # what runs logged before per-interval peaks
    assert speed_text([]) == ""
