"""``python -m playground.train {sft,reward,dpo,ppo,grpo,rloo,kto} CONFIG.yaml [--resume] [--run-dir DIR]`` — the
command the UI runs, and you can too.

The run folder is the folder holding CONFIG.yaml (or ``--run-dir``): status, metrics, log, checkpoints and the adapter go there. The
exit status is 0 when the run finished or was stopped, 1 when it failed (the reason is in status.json and the log).

``accelerate launch --multi_gpu --num_processes N -m playground.train ...`` runs SFT, reward, DPO, KTO, GRPO and RLOO
on N processes, one per GPU (or N CPU processes over gloo on a machine without one): every process trains its share
of each batch and only the main one writes the run folder (:mod:`playground.core.distributed`); status.json records
how many took part (``processes``) and how they were launched (``launch``: DeepSpeed or not, its ZeRO stage and
config file — the app refuses to resume a DeepSpeed run itself and prints the command that does), and each process
says in the log which it is. A process other than the main one that fails records why in ``failed-rank-N.txt``. PPO
refuses it.

``python -m playground.train STAGE --help`` lists the settings a stage's CONFIG.yaml takes, with the help the Train tab
shows under each input (both read it from the config fields' metadata).
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

from playground.core.distributed import (
    DistributedError,
    is_main_process,
    launch_record,
    rank,
    several_processes,
    world_size,
)
from playground.runs.run_folder import RunFolder
from playground.train.config import STAGES, ConfigError, load, settings_help


def _failure_message(error: BaseException) -> str:
    from playground.models.loading import is_out_of_memory

    if is_out_of_memory(error):
        return ("Out of memory. Try a smaller batch size (raise gradient accumulation to keep the effective batch), "
                "a shorter max length, 4-bit quantization or gradient checkpointing.")
    if isinstance(error, OSError) and error.errno == 28:
        return "The disk is full: free some space (old runs' checkpoints are large) and resume the run."
    from playground.data.instructions import DatasetError
    from playground.data.preference_pairs import PreferenceDataError
    from playground.models.catalog import CatalogError
    from playground.runs.reward_model import RewardModelError

    if isinstance(error, ConfigError):
        return f"Bad config: {error}"
    if isinstance(error, (CatalogError, DatasetError, DistributedError, PreferenceDataError,
                          RewardModelError)):  # ours: the message says what to do
        return str(error)
    return f"{type(error).__name__}: {error}"


def record_failure(folder: RunFolder, message: str, started: float) -> None:
    """Record why this process's run failed. The main process writes it to status.json, after the reasons other
    processes recorded meanwhile (theirs usually caused its own, e.g. a lost connection); any other process writes
    ``failed-rank-N.txt`` (:meth:`RunFolder.record_rank_failure`), which the app's reaper shows when the launcher
    ends the main process before it could write anything. ``started``: this launch's start (older files don't
    count)."""
    if not is_main_process():
        try:
            folder.record_rank_failure(rank(), message)
        except OSError as error:  # the log still has the traceback
            print(f"Couldn't record this process's failure in the run folder: {error}", file=sys.stderr)
        return
    others = [text for text in folder.rank_failures(since=started - 1.0)  # the processes were launched together
              if not text.endswith(f": {message}")]  # the same failure on every process is said once
    folder.update_status(state="failed", error="\n".join([*others, message]), finished=time.time())


def settings_epilog(argv: list[str]) -> str:
    """The end of ``--help``: the settings of the stage named in ``argv`` (``python -m playground.train sft --help``),
    or, with no stage named, how to list them — all the stages' would run to some 300 lines."""
    stage = next((arg for arg in argv if arg in STAGES), None)
    if stage is None:
        return f"The settings of CONFIG.yaml: python -m playground.train {{{','.join(STAGES)}}} --help"
    return settings_help(stage)


def main(argv: list[str] | None = None) -> int:
    """Run one stage on a config file in its run folder; the exit status is 0 when it finished or was stopped."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m playground.train", description=__doc__,
                                     epilog=settings_epilog(argv), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("config", type=Path, help="the run's config.yaml (its folder is the run folder)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the folder")
    parser.add_argument("--run-dir", type=Path, help="run folder (default: the config's folder); the config is "
                        "copied into it, so a recipe can be run as it is")
    args = parser.parse_args(argv)
    folder = RunFolder((args.run_dir or args.config.resolve().parent).expanduser().resolve())
    if folder.config.resolve() != args.config.resolve() and is_main_process():  # one writer per run folder
        folder.path.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.config, folder.config)
    try:
        cfg = load(args.stage, args.config)
    except ConfigError as error:
        print(f"Bad config: {error}", file=sys.stderr)
        folder.update_status(state="failed", error=f"Bad config: {error}", finished=time.time())
        return 1
    if several_processes():  # every process says so (only the main one writes status.json): the log shows all took part
        print(f"Process {rank() + 1} of {world_size()} (pid {os.getpid()}): trains its share of every batch; "
              f"{'it writes the run folder' if is_main_process() else 'the main process writes the run folder'}.",
              flush=True)
    # A STOP file already here is a Stop pressed while the run was starting: it stops after the first step.
    started = time.time()
    folder.update_status(state="running", stage=args.stage, pid=os.getpid(), started=started, error="",
                         base_model=cfg.base_model, processes=world_size(), launch=launch_record())
    try:
        stage = importlib.import_module(f"playground.train.{args.stage}")
        state = stage.main(cfg, folder, resume=args.resume)
    except BaseException as error:  # noqa: BLE001 - every failure is recorded for the Runs tab
        traceback.print_exc()
        record_failure(folder, _failure_message(error), started)
        return 1
    if is_main_process():  # the STOP file is the folder's too (status writes skip the other processes themselves)
        folder.stop_file.unlink(missing_ok=True)
    folder.update_status(state=state, finished=time.time())
    print(f"Run {state}.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
