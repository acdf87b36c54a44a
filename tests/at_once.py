"""Calling something from several threads at the same moment: what a race between two clicks looks like."""

from __future__ import annotations

import threading
from collections.abc import Callable


def starting_at_once(start: Callable[[str], object], names: tuple[str, ...] = ("one", "two")) -> list[object]:
    """What ``start(name)`` returned or raised (a ValueError) for each name, all called at the same moment from
    threads of their own, in the order they finished."""
    barrier, outcomes = threading.Barrier(len(names)), []

    def go(name: str) -> None:
        barrier.wait()
        try:
            outcomes.append(start(name))
        except ValueError as error:
            outcomes.append(error)

    threads = [threading.Thread(target=go, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcomes
