"""Training runs as processes: create a run folder, queue it, start ``python -m playground.train``, watch, stop.

Runs are processes, not threads (docs/DESIGN.md): the run writes its own folder and the app writes only the state
changes that are its own (queue, cancel, launch, "failed" for a dead process), each under the folder's status lock
(the protocol is in :mod:`playground.runs.run_folder`), so a closed browser or a reloaded page loses nothing and neither
side overwrites the other. One GPU means one run at a time: further runs wait as "queued" and start in order, once
the last run's launched process has exited (a multi-process run's other processes may still be exiting after its
main one wrote "finished"). The queue is the data dir's: reaping, picking and launching hold ``runs/.queue.lock``,
so two app processes on one data dir never both start a run. After an app restart :class:`Jobs` re-attaches to runs
whose process is still alive and marks the dead ones failed with the last lines of their log.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from filelock import FileLock

from playground.core.files import write_failure
from playground.core.settings import Settings
from playground.runs.run_folder import ACTIVE, RunFolder

ROOT = Path(__file__).resolve().parents[2]
POLL_SECONDS = 1.0
QUEUE_LOCK = ".queue.lock"
"""In the runs folder: held while reaping, picking and launching (and deleting), by every app process on the dir."""


class JobError(ValueError):
    """A run action that can't be done (name taken, run still going…); the message says why."""


@dataclass(frozen=True)
class RunInfo:
    """One row of the run list."""

    name: str
    stage: str
    base_model: str
    state: str
    created: float | None
    started: float | None
    finished: float | None
    step: int
    max_steps: int
    error: str
    queue_position: int | None
    last_loss: float | None


SINGLE_PROCESS_STAGES = frozenset({"ppo"})
"""Stages that run on one process only: PPO's loop has no distributed code, refuses a multi-process launch
(:func:`playground.train.ppo.main`), and so is offered no ``accelerate launch`` command."""


def command(stage: str, config: Path, resume: bool = False, launcher: str = "python",
            processes: int | None = None, port: int | None = None) -> list[str]:
    """The exact command a run uses (the UI shows it). ``launcher="accelerate"``: ``accelerate launch``, one process
    per GPU — ``processes`` of them (``--multi_gpu --num_machines 1 --num_processes N --mixed_precision no``), or
    with None as many as accelerate finds GPUs. ``--multi_gpu`` picks accelerate's torchrun launcher, which also
    starts N processes on a machine without a GPU (they train on the CPU over gloo); ``--cpu --num_processes N``
    would start just one there. With ``processes`` every setting accelerate would otherwise take from the user's
    default accelerate config (``accelerate config``) is given: one machine, and no mixed precision from the
    launcher — the run's config sets bf16/fp16, which the trainer applies over it. ``port``: the main process's
    port (``--main_process_port``; two runs on the default 29500 would collide). A stage in
    :data:`SINGLE_PROCESS_STAGES` refuses it (:class:`JobError`)."""
    if launcher not in ("python", "accelerate"):
        raise JobError(f"Unknown launcher {launcher!r}: python or accelerate.")
    if launcher == "accelerate" and stage in SINGLE_PROCESS_STAGES:
        raise JobError(f"{stage.upper()} runs on one process only (its loop has no multi-GPU code): run it with "
                       f"python -m playground.train, not accelerate launch.")
    if processes is not None and not (launcher == "accelerate" and processes > 1):
        raise JobError(f"{processes} process(es) is not a multi-process launch: accelerate launch takes 2 or more.")
    if launcher == "python":
        head = [sys.executable, "-m"]
    else:
        head = ["accelerate", "launch"]
        if processes:
            head += ["--multi_gpu", "--num_machines", "1", "--num_processes", str(processes), "--mixed_precision", "no"]
        head += (["--main_process_port", str(port)] if port is not None else []) + ["-m"]
    return head + ["playground.train", stage, str(config)] + (["--resume"] if resume else [])


def run_command(stage: str, config: Path, resume: bool = False, processes: int = 1,
                port: int | None = None) -> list[str]:
    """The command the app starts a run with: ``python -m playground.train`` on one process, ``accelerate launch
    --multi_gpu --num_processes N`` on ``processes`` > 1, on the main process port ``port`` (:func:`command`)."""
    if processes > 1:
        return command(stage, config, resume, launcher="accelerate", processes=processes, port=port)
    return command(stage, config, resume)


def free_port() -> int:
    """A TCP port free on this machine now, for a multi-process run's main process (``--main_process_port``): asked
    of the OS by binding port 0, as torch's own launcher does for a standalone rendezvous (the port could be taken
    again before the run binds it, but not by another run: the queue starts one at a time)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def deepspeed_command(stage: str, folder: RunFolder, status: dict[str, Any], resume: bool = True) -> str | None:
    """For a run launched by hand under DeepSpeed (``launch`` in its status.json, written by the run), the
    ``accelerate launch`` line that runs it again the same way — with the accelerate config file it was launched
    with, or when that is unknown the DeepSpeed flags it recorded — on as many processes, in its folder; None for a
    run without DeepSpeed. The app doesn't start DeepSpeed runs itself (they need the GPUs and DeepSpeed set up as
    the user did by hand), so Resume shows this instead of dropping DeepSpeed (a fresh optimizer, another memory
    layout) without a word."""
    launch = status.get("launch")
    if not isinstance(launch, dict) or not launch.get("deepspeed"):
        return None
    head = ["accelerate", "launch"]
    if launch.get("config_file"):
        head += ["--config_file", str(launch["config_file"])]
    else:
        head += ["--use_deepspeed", "--zero_stage", str(launch.get("zero_stage") or 2)]
        if launch.get("deepspeed_config_file"):
            head += ["--deepspeed_config_file", str(launch["deepspeed_config_file"])]
    head += ["--num_processes", str(max(1, int(status.get("processes") or 1))), "-m", "playground.train", stage,
             str(folder.config)] + (["--resume"] if resume else []) + ["--run-dir", str(folder.path)]
    return shlex.join(head)


def shell_command(stage: str, config: Path, resume: bool = False, launcher: str = "python",
                  processes: int | None = None) -> str:
    """:func:`command` as a line to paste into a shell (``python`` rather than this interpreter's full path)."""
    parts = command(stage, config, resume, launcher, processes)
    if launcher == "python":
        parts[0] = "python"
    return shlex.join(parts)


def several_gpus_text(stage: str, config: Path, extra: str = "") -> str:
    """The lines the UI shows below a run's command for several GPUs: a comment and the ``accelerate launch``
    command (``extra``: arguments appended to it, already shell-quoted), or, for a stage that runs on one process
    only (:data:`SINGLE_PROCESS_STAGES`), a comment saying so instead of a command it would refuse."""
    if stage in SINGLE_PROCESS_STAGES:
        return (f"# {stage.upper()} runs on one process (one GPU): its loop has no multi-GPU code, so there is no "
                f"accelerate launch command for it.")
    return (f"# or, on several GPUs (one process each; set processes in the form to have the app start it so):\n"
            f"{shell_command(stage, config, launcher='accelerate')}{extra}")


def launch_text(stage: str, config: Path, processes: int = 1, status: dict[str, Any] | None = None) -> str:
    """The command lines the UI shows for a run: for a run launched under DeepSpeed (``status``), the ``accelerate
    launch --config_file`` line that resumes it (:func:`deepspeed_command`); on ``processes`` > 1 the ``accelerate
    launch`` the app starts it with (the main process port it picks at launch is in the run's log); on one, the
    ``python`` command and below it the several-GPU one (:func:`several_gpus_text`)."""
    by_hand = deepspeed_command(stage, RunFolder(config.parent), status or {})
    if by_hand is not None:
        return f"# launched by hand under DeepSpeed: resume it the same way (the app starts no DeepSpeed run)\n{by_hand}"
    if processes > 1 and stage not in SINGLE_PROCESS_STAGES:
        return shell_command(stage, config, launcher="accelerate", processes=processes)
    return f"{shell_command(stage, config)}\n{several_gpus_text(stage, config)}"


def _processes(status: dict[str, Any]) -> int:
    """How many processes a queued run is to start on (``processes`` in its status: the config's, set when it was
    created; 1 for a run from before there was a choice, or one whose status says otherwise)."""
    value = status.get("processes")
    return value if isinstance(value, int) and value > 1 and status.get("stage") not in SINGLE_PROCESS_STAGES else 1


def _process_alive(pid: int | None) -> bool:
    """True if ``pid`` is a live (not zombie) ``playground.train`` process."""
    if not pid:
        return False
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and "playground.train" in " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


class Jobs:
    """The app's run manager: one per app, shared by every browser session."""

    def __init__(self, settings: Settings, poll: bool = True) -> None:
        self.settings = settings
        self.root = settings.runs_dir
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        # One object per Jobs: re-entrant in a thread; other threads and processes open their own handle and wait.
        self._queue_lock = FileLock(self.root / QUEUE_LOCK)
        self._processes: dict[str, subprocess.Popen] = {}
        self.reattach()
        if poll:
            threading.Thread(target=self._poll_forever, name="jobs", daemon=True).start()

    # ------------------------------------------------------------------------------------------ queries

    def folder(self, name: str) -> RunFolder:
        folder = RunFolder(self.root / name)
        if not folder.path.resolve().parent == self.root.resolve() or not folder.config.is_file():
            raise JobError(f"There is no run named {name!r}.")
        return folder

    def folders(self) -> list[RunFolder]:
        if not self.root.is_dir():
            return []
        return [RunFolder(p) for p in sorted(self.root.iterdir()) if (p / "config.yaml").is_file()]

    def runs(self) -> list[RunInfo]:
        """Every run, newest first, with queue positions for the waiting ones."""
        infos = []
        queued = self._queued()
        for folder in self.folders():
            status = folder.status()
            losses = [m["loss"] for m in folder.metrics() if "loss" in m]
            infos.append(RunInfo(
                name=folder.name, stage=status.get("stage", "?"), base_model=status.get("base_model", ""),
                state=status.get("state", "unknown"), created=status.get("created"), started=status.get("started"),
                finished=status.get("finished"), step=int(status.get("step") or 0),
                max_steps=int(status.get("max_steps") or 0), error=status.get("error", ""),
                queue_position=queued.index(folder.name) + 1 if folder.name in queued else None,
                last_loss=losses[-1] if losses else None))
        return sorted(infos, key=lambda r: r.created or 0, reverse=True)

    def _queued(self) -> list[str]:
        statuses = ((f.name, f.status()) for f in self.folders())  # one read of each status.json
        waiting = [(status.get("queued_at", 0), name) for name, status in statuses if status.get("state") == "queued"]
        return [name for _, name in sorted(waiting)]

    def active(self) -> str | None:
        """The run that holds the GPU/CPU now (starting or running), if any."""
        for folder in self.folders():
            if folder.status().get("state") in ("starting", "running"):
                return folder.name
        return None

    # ------------------------------------------------------------------------------------------ actions

    def create(self, stage: str, config: Any) -> RunFolder:
        """Make the run folder with its config.yaml and queue the run (it starts when nothing else runs)."""
        folder = RunFolder(self.root / config.name)
        with self._lock:
            try:
                folder.path.mkdir(parents=True)
            except FileExistsError as error:
                raise JobError(f"A run named {config.name!r} already exists: choose another name.") from error
            except OSError as error:
                raise JobError(f"Can't create the run folder {folder.path}: {write_failure(error, 'the runs folder')}.") \
                    from error
            try:
                folder.config.write_text(config.to_yaml())
                folder.update_status(state="queued", stage=stage, base_model=config.base_model, created=time.time(),
                                     queued_at=time.time(), resume=False,
                                     processes=int(getattr(config, "processes", 1) or 1))
            except OSError as error:
                shutil.rmtree(folder.path, ignore_errors=True)
                raise JobError(f"Can't create the run: {write_failure(error, 'the runs folder')}.") from error
        self.pump()
        return folder

    def stop(self, name: str) -> str:
        """Ask a run to stop: a queued one is simply cancelled; a running one finishes its step and checkpoints."""
        folder = self.folder(name)
        if folder.update_status(only_if=lambda now: now.get("state") == "queued", state="stopped",
                                error="Cancelled before it started.", finished=time.time()) is not None:
            return "cancelled"
        state = folder.status().get("state")  # not queued (any more): perhaps launched meanwhile
        if state not in ("starting", "running"):
            raise JobError(f"{name} is not running ({state}).")
        folder.stop_file.touch()
        return "stopping"

    def resume(self, name: str) -> None:
        """Queue a stopped or failed run again; it continues from its newest checkpoint (or starts over)."""
        folder = self.folder(name)
        by_hand = deepspeed_command(folder.status().get("stage", "sft"), folder, folder.status())
        if by_hand is not None:
            raise JobError(f"{name} was launched by hand under DeepSpeed, which the app doesn't start: resuming it "
                           f"here would drop DeepSpeed (its checkpoints' DeepSpeed optimizer state left unread, the "
                           f"memory split undone). Resume it the way it was launched:\n{by_hand}")
        with self._queue_lock:  # no app launches it between queueing and removing an old STOP
            queued = folder.update_status(only_if=lambda now: now.get("state") not in ACTIVE, state="queued",
                                          queued_at=time.time(), resume=folder.last_checkpoint() is not None,
                                          error="")
            if queued is None:
                raise JobError(f"{name} is already {folder.status().get('state')}.")
            folder.stop_file.unlink(missing_ok=True)
        self.pump()

    def delete(self, name: str) -> None:
        folder = self.folder(name)
        with self._queue_lock:  # no app launches it while its folder goes
            if folder.status().get("state") in ("starting", "running"):
                raise JobError(f"{name} is running: stop it first.")
            shutil.rmtree(folder.path)

    # ------------------------------------------------------------------------------------------ the loop

    def pump(self) -> None:
        """Notice ended processes, then start the oldest queued run if nothing is running.

        Holds the data dir's queue lock throughout, so another app process on the same data dir can't pick the same
        queued run, nor take a run this one is launching (state "starting", pid not yet written) for a dead one.
        """
        with self._lock, self._queue_lock:
            self._reap()
            if self.active() is not None or self._processes:  # a tracked launch whose processes are still exiting
                return
            queued = self._queued()
            if queued:
                self._launch(RunFolder(self.root / queued[0]))

    def _launch(self, folder: RunFolder) -> None:
        # "starting" before the process exists: a run that fails at once writes "failed" after this, not before.
        status = folder.update_status(only_if=lambda now: now.get("state") == "queued", state="starting",
                                      started=time.time(), pid=None)
        if status is None:  # cancelled since it was picked
            return
        stage, resume, processes = status.get("stage", "sft"), bool(status.get("resume")), _processes(status)
        args = run_command(stage, folder.config, resume, processes, port=free_port() if processes > 1 else None)
        shown = shlex.join(["python", *args[1:]] if processes == 1 else args)
        if processes > 1:  # accelerate's launcher under this interpreter: its console script may not be on PATH
            args[:2] = [sys.executable, "-m", "accelerate.commands.launch"]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                   PYTHONUNBUFFERED="1")
        try:
            with folder.log.open("a") as log:  # the child keeps its own handle; ours closes at once
                log.write(f"\n$ {shown}\n")
                log.flush()
                process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as error:
            folder.update_status(state="failed", error=f"Couldn't start the run: {error}", finished=time.time())
            return
        self._processes[folder.name] = process
        folder.update_status(pid=process.pid)  # the run writes the same pid itself; whichever comes first

    def _reap(self) -> None:
        """Runs whose process ended without saying how are failed, with the log's last lines as the reason."""
        for name, process in list(self._processes.items()):
            if process.poll() is not None:
                del self._processes[name]
        for folder in self.folders():
            status = folder.status()
            pid = status.get("pid")
            if status.get("state") not in ("starting", "running") or folder.name in self._processes:
                continue
            if not _process_alive(pid):
                # Another process of a multi-process run that failed said why; the launcher then ended the rest.
                others = folder.rank_failures(since=float(status.get("started") or 0) - 1.0)
                error = "\n".join(others) if others else (
                    "The run's process ended without finishing (killed, or the machine ran out of memory?). "
                    f"Last lines of its log:\n{folder.log_tail(8)}")
                # Only if unchanged since our read: the run may have written its end ("finished"…) and then exited.
                folder.update_status(
                    only_if=lambda now, pid=pid: now.get("state") in ("starting", "running") and now.get("pid") == pid,
                    state="failed", finished=time.time(), error=error)

    def reattach(self) -> None:
        """After an app restart: keep watching live runs, fail dead ones, and carry on with the queue."""
        self.pump()

    def _poll_forever(self) -> None:
        while True:
            time.sleep(POLL_SECONDS)
            try:
                self.pump()
            except Exception as error:  # noqa: BLE001 - the poller must survive a bad run folder
                print(f"jobs: {error}", file=sys.stderr)

    def wait(self, name: str, timeout: float = 300) -> str:
        """Block until run ``name`` is no longer active; return its final state (tests, scripts)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump()
            state = self.folder(name).status().get("state")
            if state not in ACTIVE:
                return state
            time.sleep(0.2)
        raise TimeoutError(f"{name} still {self.folder(name).status().get('state')} after {timeout} s")
