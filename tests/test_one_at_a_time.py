"""One background job at a time (the Rate batches' and the judge runs' runner): a second start is refused while one
runs, Stop reaches only the running job, and a finished job is no longer the running one."""

import threading

import pytest

from playground.core.one_at_a_time import OneAtATime


def test_a_second_job_is_refused_while_one_runs_and_stop_reaches_only_the_running_one():
    jobs = OneAtATime("busy: stop it first")
    started, stopped = threading.Event(), []

    def work(stop: threading.Event) -> None:
        started.set()
        stopped.append(stop.wait(10))

    with jobs.lock:
        jobs.refuse_if_running()
        jobs.launch("a", work, name="job-a")
    assert started.wait(10)
    assert jobs.running() == "a"
    with jobs.lock, pytest.raises(ValueError, match="busy: stop it first"):
        jobs.refuse_if_running()
    assert not jobs.stop("b")  # not the running job: nothing is asked
    assert jobs.running() == "a"
    assert jobs.stop("a")
    jobs.wait(10)
    assert stopped == [True]  # the job saw the stop flag rather than timing out
    assert jobs.running() is None
    assert not jobs.stop("a")  # a finished job can't be stopped again


def test_after_a_job_ends_the_next_one_starts():
    jobs = OneAtATime("busy")
    ran: list[str] = []
    for name in ("first", "second"):
        with jobs.lock:
            jobs.refuse_if_running()
            jobs.launch(name, lambda stop, name=name: ran.append(name), name=name)
        jobs.wait(10)
    assert ran == ["first", "second"]
    assert jobs.running() is None
    jobs.wait(0)  # nothing running: returns at once
