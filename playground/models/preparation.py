"""Preparation: what a model being made ready is doing, how far along it is, and about how long is left.

A model's first load on a fresh data dir does one-time work (assembling a packaged GGUF, reading its tokenizer, or,
on transformers, dequantizing the whole model into safetensors). The app starts that work for the default models
as soon as it starts (``ModelCache.prepare``), and both panes show where it is: the loader's own progress line,
a percentage and an ETA. The percentage is time-based against an estimate of the whole job made before it starts
(:func:`estimate_seconds`, from what is already cached and the file sizes, calibrated on 2 idle Xeon cores), not
a count of steps: the steps differ a hundredfold in length, so a step count would sit at 66 % for a minute.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

# Seconds per MB of GGUF file, measured on 2 idle cores (docs/BENCHMARKS.md, "First answers"): transformers'
# dequantizing import (Gemma 3 270M: 254 MB in ~118 s; SmolLM2: 105 MB in ~36 s) and reading a tokenizer from a
# GGUF (dominated by the vocabulary: Gemma's 262k tokens).
IMPORT_SECONDS_PER_MB = 0.45
TOKENIZER_SECONDS_PER_MB = 0.06
LOAD_SECONDS_PER_MB = 0.02
MINIMUM_SECONDS = 1.0


def estimate_seconds(gguf_mb: float, needs_tokenizer: bool, needs_import: bool, weights_mb: float) -> float:
    """Expected wall time of a load: a one-time import or tokenizer read (by GGUF size) plus reading the weights."""
    seconds = LOAD_SECONDS_PER_MB * weights_mb
    if needs_import:
        seconds += IMPORT_SECONDS_PER_MB * gguf_mb
    elif needs_tokenizer:
        seconds += TOKENIZER_SECONDS_PER_MB * gguf_mb
    return max(seconds, MINIMUM_SECONDS)


@dataclass
class Preparing:
    """One model's preparation, as the panes show it."""

    name: str
    expected_seconds: float
    started: float = field(default_factory=time.monotonic)
    line: str = "waiting for its turn"
    finished: float | None = None
    error: str | None = None

    def percent(self, now: float | None = None) -> int:
        """Share of the expected time gone, held at 99 % until it is really done (an estimate can be short)."""
        if self.finished is not None:
            return 100
        elapsed = (now or time.monotonic()) - self.started
        return min(99, int(100 * elapsed / max(self.expected_seconds, 1e-9)))

    def eta_seconds(self, now: float | None = None) -> float | None:
        """Seconds left by the estimate; None once it has run past the estimate (then it says "almost done")."""
        if self.finished is not None:
            return 0.0
        left = self.expected_seconds - ((now or time.monotonic()) - self.started)
        return left if left > 0 else None

    def describe(self, label: str | None = None, now: float | None = None) -> str:
        """``Preparing gemma-3-270m: reading its tokenizer · 40 % · about 12 s left``. With ``label`` (blind mode:
        "one of the models") the name gives way to it and the step and error texts are left out: they name the
        model ("Reading Gemma 3 270M's tokenizer")."""
        who = label or self.name
        if self.error:
            return f"Could not prepare {who}" + ("." if label else f": {self.error}")
        if self.finished is not None:
            who = who[:1].upper() + who[1:] if label else who  # a label starts the sentence; a name keeps its case
            return f"{who} is ready (prepared in {self.finished - self.started:.0f} s)."
        eta = self.eta_seconds(now)
        left = f"about {eta:.0f} s left" if eta is not None else "almost done"
        step = "" if label else f": {self.line}"
        return f"Preparing {who}{step} · {self.percent(now)} % · {left}"


class Board:
    """The preparations in this process, by model-cache key; thread-safe (loads run in background threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple, Preparing] = {}

    def begin(self, key: tuple, name: str, expected_seconds: float) -> Preparing:
        """Start (or, for one announced and waiting its turn, continue) a model's preparation: the time already
        waited stays in its percentage, so it never jumps back when the real work starts."""
        with self._lock:
            item = self._items.get(key)
            if item is not None and item.finished is None and item.error is None:
                item.expected_seconds = (time.monotonic() - item.started) + expected_seconds
                return item
            self._items[key] = item = Preparing(name, expected_seconds)
            return item

    def get(self, key: tuple) -> Preparing | None:
        with self._lock:
            return self._items.get(key)

    def finished_within(self, seconds: float) -> bool:
        """Whether a preparation finished in the last ``seconds`` (the panes still say it is ready)."""
        now = time.monotonic()
        with self._lock:
            return any(p.finished is not None and now - p.finished <= seconds for p in self._items.values())

    def active(self) -> list[Preparing]:
        """Preparations not finished yet."""
        with self._lock:
            return [p for p in self._items.values() if p.finished is None and p.error is None]
