"""One background job at a time, in a daemon thread with a stop flag: what the Rate tab's batch generation and the AI
judge's runs share. Each runner keeps its own records (the store's batches, the judge's run files); this holds only
which job runs now, refuses a second one, and asks the running one to stop.

Written here rather than with ``concurrent.futures``: an executor queues a second job where these runners must refuse
it, and has no way to ask a running job to stop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class OneAtATime:
    """Which job (by id) runs in the background now, if any. :meth:`launch` and :meth:`refuse_if_running` are called
    with :attr:`lock` held, so a runner can check, write its record and start the thread as one step: of two starts
    at once, one runs and the other is refused having written nothing."""

    def __init__(self, busy: str) -> None:
        """``busy``: the ValueError's message when a job is asked to start while another runs."""
        self.lock = threading.Lock()
        self._busy = busy
        self._running: tuple[str, threading.Thread, threading.Event] | None = None

    def running(self) -> str | None:
        """Id of the job running now, if any."""
        with self.lock:
            return self.running_id()

    def running_id(self) -> str | None:
        """:meth:`running` for a caller that holds :attr:`lock`."""
        if self._running and self._running[1].is_alive():
            return self._running[0]
        return None

    def refuse_if_running(self) -> None:
        """ValueError (the ``busy`` message) while a job runs; the caller holds :attr:`lock`."""
        if self.running_id():
            raise ValueError(self._busy)

    def launch(self, job_id: str, work: Callable[[threading.Event], None], name: str) -> None:
        """Start ``work(stop)`` in a daemon thread called ``name``, as job ``job_id``; the caller holds :attr:`lock`.
        ``work`` checks the event between its steps and ends when it is set."""
        stop = threading.Event()
        thread = threading.Thread(target=work, args=(stop,), name=name, daemon=True)
        self._running = (job_id, thread, stop)
        thread.start()

    def stop(self, job_id: str) -> bool:
        """Ask job ``job_id`` to stop (after the step it is on); False when it isn't the one running."""
        with self.lock:
            if self._running and self._running[0] == job_id and self._running[1].is_alive():
                self._running[2].set()
                return True
        return False

    def wait(self, timeout: float | None = None) -> None:
        """Block until the running job (if any) ends (tests and benchmarks)."""
        with self.lock:
            thread = self._running[1] if self._running else None
        if thread is not None:
            thread.join(timeout)
