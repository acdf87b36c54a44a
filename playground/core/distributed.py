"""Which process of a run am I: for a run started with ``accelerate launch`` (or ``torchrun``) on several processes.

A launcher starts one copy of ``python -m playground.train`` per GPU and tells each who it is in environment
variables: its rank among all processes (``RANK``), its rank on this machine (``LOCAL_RANK``, which GPU it owns) and
how many there are (``WORLD_SIZE``); MPI launchers use their own names. From those this module answers:

- :func:`local_device` — the device this process puts its model on (its own GPU, ``cuda:LOCAL_RANK``);
- :func:`is_main_process` — whether this process writes the run folder (status, metrics, data split, adapter):
  the others train the same steps and must not race it on the same files;
- :func:`require_single_process` — a stage with no distributed code (PPO) refuses a multi-process launch instead
  of every process running a whole run of its own;
- :func:`from_main_process` — a decision every process must take alike (Stop), made by the main process;
- :func:`deepspeed_zero_stage` and :func:`launch_record` — whether it runs under DeepSpeed and how it was launched
  (ZeRO stage, config files), which the 4-bit load and Resume need.

A plain ``python -m playground.train`` (and the app) sets none of these variables: it is the main and only process.

The variables are read directly rather than through accelerate's ``PartialState``: creating that state initialises
the process group (the trainer does that later, at its own time), and importing accelerate imports torch, which the
app's run-folder writes must not pay for. The names and their order are accelerate's own
(``accelerate.utils.get_cpu_distributed_information``), so the answers agree with ``PartialState``'s.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

RANK_VARIABLES = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
LOCAL_RANK_VARIABLES = ("LOCAL_RANK", "MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK")
WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


class DistributedError(RuntimeError):
    """A multi-process launch this run can't do (too many processes for the GPUs, a single-process stage); the
    message says what to do instead."""


def _first_int(names: tuple[str, ...], default: int) -> int:
    """The first of ``names`` set to a whole number ≥ 0 (as accelerate's ``get_int_from_env``), else ``default``."""
    for name in names:
        text = os.environ.get(name, "").strip()
        if not text:
            continue
        try:
            value = int(text)
        except ValueError as error:
            raise DistributedError(f"The launcher set {name}={text!r}, which is not a whole number.") from error
        if value >= 0:
            return value
    return default


def world_size() -> int:
    """How many processes run this training together (1 without a multi-process launcher)."""
    return _first_int(WORLD_SIZE_VARIABLES, 1)


def rank() -> int:
    """This process's rank among all of the run's processes (0 without a multi-process launcher)."""
    return _first_int(RANK_VARIABLES, 0)


def local_rank() -> int:
    """This process's rank on this machine, i.e. which of the machine's GPUs it owns (0 without a launcher)."""
    return _first_int(LOCAL_RANK_VARIABLES, 0)


def several_processes() -> bool:
    """Whether this process is one of several training together (``accelerate launch`` with more than one)."""
    return world_size() > 1


def is_main_process() -> bool:
    """Whether this process is the one that writes the run folder: rank 0, or the only process."""
    return rank() == 0


def local_device(cuda_devices: int) -> str:
    """The device this process's model goes on, given how many CUDA devices it sees (0: none).

    ``"cpu"`` without CUDA. One process: ``"cuda"`` (the current device, as a single-process run always had).
    Several processes: ``"cuda:N"`` with N the local rank — each process on its own GPU, which DDP requires (a
    module on another rank's device is rejected) and accelerate checks for 4-bit models. Raises
    :class:`DistributedError` when the local rank has no GPU of its own (more processes than GPUs)."""
    if cuda_devices <= 0:
        return "cpu"
    if not several_processes():
        return "cuda"
    index = local_rank()
    if index >= cuda_devices:
        raise DistributedError(f"This process has local rank {index} but sees only {cuda_devices} GPU(s): launch "
                               f"at most {cuda_devices} process(es) per machine (accelerate launch --num_processes "
                               f"{cuda_devices}), one per GPU.")
    return f"cuda:{index}"


def require_single_process(what: str) -> None:
    """Refuse a multi-process launch for ``what`` (a stage with no distributed code, where every process would run
    the whole training by itself and all of them would write the same run folder): raises
    :class:`DistributedError` saying to run it as one process."""
    if several_processes():
        raise DistributedError(f"{what} runs on one process only: it has no multi-GPU code, and under accelerate "
                               f"launch each of the {world_size()} processes would run a whole {what} of its own. "
                               f"Run it with python -m playground.train (one GPU).")


def uses_deepspeed() -> bool:
    """Whether ``accelerate launch`` started this process under DeepSpeed (``ACCELERATE_USE_DEEPSPEED``)."""
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "").strip().lower() in ("1", "true", "yes")


def deepspeed_zero_stage() -> int:
    """The DeepSpeed ZeRO stage this launch trains with (2 or 3 from ``accelerate launch --config_file
    assets/accelerate/deepspeed-zero3.yaml``), or 0 without DeepSpeed. Read from the variables ``accelerate launch``
    sets, which the trainer's DeepSpeed plugin reads later (the model is loaded before the trainer exists, and ZeRO-3
    changes how): ``ACCELERATE_DEEPSPEED_ZERO_STAGE``, or — when the accelerate config names a DeepSpeed JSON
    (``deepspeed_config_file``), which then holds the stage and the variable is not set — that JSON's
    ``zero_optimization.stage``; accelerate's default stage (2) when neither says."""
    if not uses_deepspeed():
        return 0
    if os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "").strip():
        return _first_int(("ACCELERATE_DEEPSPEED_ZERO_STAGE",), 2)
    path = os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE", "").strip()
    if path:
        try:
            stage = json.loads(Path(path).expanduser().read_text()).get("zero_optimization", {}).get("stage", 0)
        except (OSError, ValueError, AttributeError) as error:
            raise DistributedError(f"Can't read the DeepSpeed config {path} the launcher named: {error}") from error
        return int(stage) if str(stage).isdigit() else 0  # DeepSpeed's own default: no ZeRO
    return 2  # accelerate's default stage


def launcher_config_file() -> str | None:
    """The accelerate config file the launching ``accelerate launch`` was given (its ``--config_file``), as an
    absolute path; None when this process was not started by ``accelerate launch`` or it was given none. accelerate hands its processes the settings it read
    (``ACCELERATE_*`` variables) but not the file's path, so it is read from the launcher's own command line: the
    parent process (accelerate runs torchrun's agent in its own process, which starts the training processes)."""
    import psutil  # a gradio dependency; imported here so the app's run-folder writes don't pay for it

    try:
        parent = psutil.Process().parent()
        words, cwd = (parent.cmdline(), parent.cwd()) if parent is not None else ([], "")
    except (psutil.Error, OSError):
        return None
    launch = next((i for i, w in enumerate(words) if w == "launch" or w.endswith("accelerate.commands.launch")), None)
    if launch is None:
        return None
    tail = words[launch + 1:]
    for i, word in enumerate(tail):
        if word in ("-m", "--") or not word.startswith("-") and i and not tail[i - 1].startswith("-"):
            break  # the training command starts: its own arguments are not the launcher's
        if word == "--config_file" and i + 1 < len(tail):
            return str(Path(cwd, tail[i + 1]).expanduser().resolve())
        if word.startswith("--config_file="):
            return str(Path(cwd, word.split("=", 1)[1]).expanduser().resolve())
    return None  # accelerate's default config, if any: a relaunch with the recorded flags merges it the same way


def launch_record() -> dict[str, Any]:
    """How this run was launched, for status.json (``launch``) so that Resume can launch it the same way: DeepSpeed
    or not, its ZeRO stage, the DeepSpeed JSON the accelerate config named and the accelerate config file itself
    (:func:`launcher_config_file`). Without DeepSpeed just ``{"deepspeed": False}``: the app's own ``--multi_gpu``
    launch (or ``python``) is what it replays."""
    if not uses_deepspeed():
        return {"deepspeed": False}
    return {"deepspeed": True, "zero_stage": deepspeed_zero_stage(),
            "deepspeed_config_file": os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE") or None,
            "config_file": launcher_config_file()}


def from_main_process(value: bool) -> bool:
    """The main process's ``value``, on every process: for a decision all processes must take alike (stop after
    this step), since a process that stops while the others go on leaves them waiting for it forever. Only the
    main process's ``value`` counts (the others may pass anything, e.g. what they read a moment later). Without an
    initialised process group — one process — it is ``value`` itself."""
    if not several_processes():
        return value
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    box = [bool(value)]
    dist.broadcast_object_list(box, src=0)  # the backend's current device (accelerate set it) carries the bytes
    return bool(box[0])


def wait_for_main_process(files: list[Path], timeout: float = 600.0, poll: float = 0.5) -> None:
    """Wait until the main process has written every one of ``files`` in this launch: each exists and was written
    after this process started (a file from an earlier launch of the same run doesn't count). For a process other
    than the main one, before the process group exists (so no barrier): the data split the main process makes.
    Raises :class:`DistributedError` after ``timeout`` seconds."""
    import psutil  # a gradio dependency; imported here so the app's run-folder writes don't pay for it

    started = psutil.Process().create_time() - 1.0  # launched together: the main process's writes come later
    deadline = time.monotonic() + timeout
    while not all(f.is_file() and f.stat().st_mtime >= started for f in files):
        if time.monotonic() > deadline:
            raise DistributedError(f"Waited {timeout:.0f} s for the main process to write "
                                   f"{', '.join(f.name for f in files)}: did it fail? Its log says why.")
        time.sleep(poll)
