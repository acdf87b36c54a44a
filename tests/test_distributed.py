"""A run under ``accelerate launch``: each process on its own device, one writer of the run folder, PPO refused.

The launcher's environment variables are faked with monkeypatch; the one collective, :func:`from_main_process`, runs
on two real CPU processes (gloo). Real two-process training runs of every stage but PPO, started by the app, are in
tests/test_multiprocess_runs.py.
"""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import pytest

from playground.core import distributed
from playground.core.distributed import DistributedError
from playground.runs.jobs import JobError, command, launch_text, run_command, several_gpus_text, shell_command
from playground.runs.run_folder import RunFolder
from playground.train.__main__ import main as train_main
from playground.train.config import ConfigError, KTOConfig, PPOConfig, RewardConfig, SFTConfig

LAUNCHER_VARIABLES = (distributed.RANK_VARIABLES + distributed.LOCAL_RANK_VARIABLES
                      + distributed.WORLD_SIZE_VARIABLES + ("LOCAL_WORLD_SIZE", "ACCELERATE_USE_DEEPSPEED",
                                                            "ACCELERATE_DEEPSPEED_ZERO_STAGE",
                                                            "ACCELERATE_DEEPSPEED_CONFIG_FILE"))


@pytest.fixture(autouse=True)
def no_launcher(monkeypatch):
    """Every test starts as a plain single process, whatever launched pytest."""
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def as_process(monkeypatch, rank: int, world: int, local: int | None = None) -> None:
    """Set the variables torchrun / accelerate launch give process ``rank`` of ``world``."""
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("LOCAL_RANK", str(rank if local is None else local))
    monkeypatch.setenv("WORLD_SIZE", str(world))


# ---------------------------------------------------------------------------------------------- who am I


def test_a_plain_process_is_the_main_and_only_one_on_the_current_gpu():
    assert (distributed.rank(), distributed.local_rank(), distributed.world_size()) == (0, 0, 1)
    assert distributed.is_main_process() and not distributed.several_processes()
    assert distributed.local_device(0) == "cpu" and distributed.local_device(2) == "cuda"


def test_each_launched_process_gets_its_own_gpu_and_only_rank_0_writes(monkeypatch):
    devices = []
    for rank in range(4):
        as_process(monkeypatch, rank, 4)
        devices.append(distributed.local_device(4))
        assert distributed.several_processes() and distributed.is_main_process() == (rank == 0)
    assert devices == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    as_process(monkeypatch, 5, 8, local=1)  # the second machine's second GPU: global rank 5, local rank 1
    assert distributed.local_device(4) == "cuda:1" and not distributed.is_main_process()
    assert distributed.local_device(0) == "cpu"  # a multi-process CPU run (accelerate launch --cpu)


def test_mpi_launchers_names_are_read_too(monkeypatch):
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "1")
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1")
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    assert not distributed.is_main_process() and distributed.local_device(2) == "cuda:1"


@pytest.mark.parametrize("env", [{}, {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"},
                                 {"PMI_RANK": "2", "MPI_LOCALRANKID": "0", "PMI_SIZE": "3"},
                                 {"RANK": "-1", "OMPI_COMM_WORLD_RANK": "1", "WORLD_SIZE": "2"}])
def test_the_answers_are_accelerates(monkeypatch, env):
    from accelerate.utils import get_cpu_distributed_information

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    library = get_cpu_distributed_information()
    assert (distributed.rank(), distributed.local_rank(), distributed.world_size()) == \
        (library.rank, library.local_rank, library.world_size)


def test_more_processes_than_gpus_is_refused_saying_how_many(monkeypatch):
    as_process(monkeypatch, 2, 3)
    with pytest.raises(DistributedError, match=r"local rank 2 but sees only 2 GPU.*--num_processes 2"):
        distributed.local_device(2)


def test_a_garbled_variable_is_named(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(DistributedError, match="WORLD_SIZE='two'"):
        distributed.world_size()


def test_pick_device_places_each_rank_on_its_own_gpu(monkeypatch):
    import torch

    from playground.models.loading import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device() == "cuda"
    as_process(monkeypatch, 1, 2)
    assert pick_device() == "cuda:1"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device() == "cpu"


# ---------------------------------------------------------------------------------------------- one writer


def test_only_the_main_process_writes_the_run_folder(tmp_path, monkeypatch):
    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()
    as_process(monkeypatch, 1, 2)
    assert folder.update_status(state="running", step=1) is None
    folder.append_metrics({"step": 1, "loss": 1.0})
    assert not folder.status_file.exists() and not folder.metrics_file.exists()
    as_process(monkeypatch, 0, 2)
    folder.update_status(state="running", step=2)
    folder.append_metrics({"step": 1, "loss": 1.0})
    folder.append_metrics({"step": 2, "loss": 0.5})
    as_process(monkeypatch, 1, 2)
    folder.forget_after(1)  # a resumed run: the other process leaves the metrics to the main one
    assert folder.status()["step"] == 2 and [row["step"] for row in folder.metrics()] == [1, 2]
    as_process(monkeypatch, 0, 2)
    folder.forget_after(1)
    assert [row["step"] for row in folder.metrics()] == [1]


def test_only_the_main_process_saves_the_adapter(tmp_path, monkeypatch):
    from playground.train.common import save_adapter

    saved = []
    model = types.SimpleNamespace(save_pretrained=lambda path, **kwargs: saved.append(path))
    folder = RunFolder(tmp_path / "run")
    as_process(monkeypatch, 1, 2)
    save_adapter(model, SFTConfig(name="run"), folder)
    assert saved == [] and not folder.adapter.exists() and not (folder.path / ".adapter-tmp").exists()


def test_only_the_main_process_makes_the_data_split_and_the_others_train_on_its(tmp_path, monkeypatch, settings):
    from playground.data.preference_pairs import run_pairs

    source = tmp_path / "pairs.jsonl"
    source.write_text("".join(json.dumps({"prompt": f"Q{i}?", "chosen": "yes", "rejected": "no"}) + "\n"
                              for i in range(10)))
    cfg = RewardConfig(datasets=[str(source)], eval_fraction=0.2, data_dir=str(settings.data_dir))
    data = tmp_path / "run" / "data"
    as_process(monkeypatch, 0, 2)
    main = run_pairs(cfg, settings, data, resume=False)
    assert sorted(p.name for p in data.iterdir()) == ["eval.jsonl", "train.jsonl"]
    # A pair arriving after the main process read the data (a vote) changes nothing for the others: they read its
    # split, not the datasets.
    with source.open("a") as out:
        out.write(json.dumps({"prompt": "Late?", "chosen": "yes", "rejected": "no"}) + "\n")
    as_process(monkeypatch, 1, 2)
    assert run_pairs(cfg, settings, data, resume=False) == main


def test_another_process_waits_for_this_launchs_split_and_says_so_when_it_never_comes(tmp_path, monkeypatch):
    import psutil

    from playground.core.distributed import DistributedError, wait_for_main_process

    files = [tmp_path / "train.jsonl", tmp_path / "eval.jsonl"]
    with pytest.raises(DistributedError, match="main process to write train.jsonl, eval.jsonl"):
        wait_for_main_process(files, timeout=0.3, poll=0.05)
    before = psutil.Process().create_time() - 60
    for f in files:  # an earlier launch's split: not this one's
        f.write_text("")
        os.utime(f, (before, before))
    with pytest.raises(DistributedError):
        wait_for_main_process(files, timeout=0.3, poll=0.05)
    for f in files:
        f.write_text("")  # written now, by this launch's main process
    wait_for_main_process(files, timeout=0.3, poll=0.05)


def run_cli(stage: str, config: Path, run_dir: Path, monkeypatch, result: str = "finished") -> int:
    """``python -m playground.train STAGE CONFIG --run-dir RUN_DIR`` with the stage replaced by one that only
    returns ``result`` (PPO's real entry point is kept: its refusal comes before any model is loaded)."""
    if stage != "ppo":
        monkeypatch.setitem(sys.modules, f"playground.train.{stage}",
                            types.SimpleNamespace(main=lambda cfg, folder, resume=False: result))
    return train_main([stage, str(config), "--run-dir", str(run_dir)])


def test_a_run_on_two_processes_has_one_writer(tmp_path, monkeypatch):
    config = tmp_path / "sft.yaml"
    config.write_text(SFTConfig(name="two").to_yaml())
    folder = RunFolder(tmp_path / "runs" / "two")
    as_process(monkeypatch, 1, 2)
    assert run_cli("sft", config, folder.path, monkeypatch) == 0
    assert not folder.path.exists()  # no config copy, no status
    as_process(monkeypatch, 0, 2)
    folder.path.mkdir(parents=True)
    folder.stop_file.touch()  # Stop pressed: the run ends, and only its main process clears the request
    assert run_cli("sft", config, folder.path, monkeypatch, result="stopped") == 0
    assert folder.config.read_text() == config.read_text()
    assert folder.status()["state"] == "stopped" and folder.status()["pid"] == os.getpid()
    assert not folder.stop_file.exists()


def test_ppo_refuses_several_processes_and_the_main_one_records_why(tmp_path, monkeypatch):
    config = tmp_path / "ppo.yaml"
    config.write_text(PPOConfig(name="ppo-multi", reward_run="rm").to_yaml())
    folder = RunFolder(tmp_path / "runs" / "ppo-multi")
    as_process(monkeypatch, 1, 2)
    assert run_cli("ppo", config, folder.path, monkeypatch) == 1
    assert not folder.status_file.exists()
    assert (folder.path / "failed-rank-1.txt").read_text().startswith("PPO runs on one process only")
    as_process(monkeypatch, 0, 2)
    assert run_cli("ppo", config, folder.path, monkeypatch) == 1
    status = folder.status()
    assert status["state"] == "failed" and "finished" in status
    assert status["error"].startswith("PPO runs on one process only") and "python -m playground.train" in \
        status["error"]


def test_another_process_s_failure_is_recorded_and_shown_instead_of_a_generic_one(tmp_path, monkeypatch):
    """Process 2 fails: it can't write status.json, so it writes failed-rank-1.txt; the main process's own failure
    (caused by it) and the app's reaper (the launcher killed the main process) both show that reason first."""
    from playground.core.settings import Settings
    from playground.runs.jobs import Jobs

    settings = Settings(data_dir=tmp_path / "data")
    settings.ensure_dirs()
    config = tmp_path / "sft.yaml"
    config.write_text(SFTConfig(name="two").to_yaml())
    folder = RunFolder(settings.runs_dir / "two")

    def failing(message: str) -> types.SimpleNamespace:
        def main(cfg, folder, resume=False):
            raise RuntimeError(message)
        return types.SimpleNamespace(main=main)

    as_process(monkeypatch, 1, 2)
    monkeypatch.setitem(sys.modules, "playground.train.sft", failing("CUDA error: an illegal memory access"))
    assert train_main(["sft", str(config), "--run-dir", str(folder.path)]) == 1
    assert not folder.status_file.exists()
    assert (folder.path / "failed-rank-1.txt").read_text() == "RuntimeError: CUDA error: an illegal memory access"

    as_process(monkeypatch, 0, 2)  # the main process fails next, on the collective process 2 left
    monkeypatch.setitem(sys.modules, "playground.train.sft", failing("Connection closed by peer"))
    assert train_main(["sft", str(config), "--run-dir", str(folder.path)]) == 1
    assert folder.status()["error"].splitlines() == [
        "Process 2 of the run failed: RuntimeError: CUDA error: an illegal memory access",
        "RuntimeError: Connection closed by peer"]

    # the launcher killed the main process before it wrote anything: the reaper shows process 2's reason
    folder.update_status(state="running", error="", pid=None, started=folder.status()["started"])
    Jobs(settings, poll=False)  # reaps at once
    assert folder.status()["state"] == "failed"
    assert folder.status()["error"] == "Process 2 of the run failed: RuntimeError: CUDA error: an illegal memory access"
    # a later launch of the run doesn't blame it on the earlier one's failure
    folder.update_status(state="running", error="", pid=None, started=folder.status()["started"] + 60)
    Jobs(settings, poll=False)
    assert folder.status()["error"].startswith("The run's process ended without finishing")


def test_a_deepspeed_launch_is_recorded_and_resume_prints_its_command_instead_of_dropping_it(tmp_path, monkeypatch):
    from playground.core.settings import Settings
    from playground.runs.jobs import Jobs, deepspeed_command

    settings = Settings(data_dir=tmp_path / "data")
    settings.ensure_dirs()
    config = tmp_path / "sft.yaml"
    config.write_text(SFTConfig(name="ds").to_yaml())
    folder = RunFolder(settings.runs_dir / "ds")
    zero3 = str(Path("assets/accelerate/deepspeed-zero3.yaml").resolve())
    as_process(monkeypatch, 0, 2)
    assert run_cli("sft", config, folder.path, monkeypatch, result="stopped") == 0
    assert folder.status()["launch"] == {"deepspeed": False}  # the app's own launch: replayed as it is

    # accelerate launch --config_file deepspeed-zero3.yaml --num_processes 2 ... --run-dir (the variables it sets)
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "3")
    monkeypatch.setattr(distributed, "launcher_config_file", lambda: zero3)  # the launcher's own: its parent's
    assert run_cli("sft", config, folder.path, monkeypatch, result="stopped") == 0
    status = folder.status()
    assert status["launch"] == {"deepspeed": True, "zero_stage": 3, "deepspeed_config_file": None,
                                "config_file": zero3} and status["processes"] == 2
    by_hand = (f"accelerate launch --config_file {zero3} --num_processes 2 -m playground.train sft "
               f"{folder.config} --resume --run-dir {folder.path}")
    jobs = Jobs(settings, poll=False)
    with pytest.raises(JobError, match="launched by hand under DeepSpeed") as refused:
        jobs.resume("ds")
    assert str(refused.value).endswith(f"\n{by_hand}") and folder.status()["state"] == "stopped"  # not queued
    assert launch_text("sft", folder.config, 2, folder.status()).splitlines()[1] == by_hand  # the Runs tab's
    # the accelerate config file unknown: the DeepSpeed settings it recorded, as flags
    status["launch"] |= {"config_file": None, "deepspeed_config_file": "/cfg/ds.json"}
    assert deepspeed_command("sft", folder, status, resume=False) == (
        f"accelerate launch --use_deepspeed --zero_stage 3 --deepspeed_config_file /cfg/ds.json --num_processes 2 "
        f"-m playground.train sft {folder.config} --run-dir {folder.path}")


def test_the_queue_starts_the_next_run_only_once_every_process_of_the_last_one_has_exited(tmp_path):
    """The main process writes "finished" while the launcher and the other processes are still exiting (holding
    the GPUs): the app's launch stays the active one until its process has exited."""
    import subprocess
    import time

    from playground.core.settings import Settings
    from playground.runs.jobs import Jobs

    settings = Settings(data_dir=tmp_path / "data")
    settings.ensure_dirs()
    jobs = Jobs(settings, poll=False)
    done, waiting = RunFolder(settings.runs_dir / "done"), RunFolder(settings.runs_dir / "next")
    for folder, state in ((done, "finished"), (waiting, "queued")):
        folder.path.mkdir()
        folder.config.write_text(SFTConfig(name=folder.name).to_yaml())
        folder.update_status(state=state, stage="sft", queued_at=time.time())
    launcher = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])  # still exiting
    try:
        jobs._processes["done"] = launcher
        jobs.pump()
        assert waiting.status()["state"] == "queued" and "done" in jobs._processes
    finally:
        launcher.kill()
        launcher.wait()
    jobs._reap()  # once it has exited, the queue is free again (pump would start "next" now)
    assert jobs._processes == {}


def test_the_launchers_config_file_is_read_from_the_launching_command_line(tmp_path):
    """accelerate hands its processes no config path: it is read from the parent process's command line (here a
    stand-in parent whose command line reads ``... launch --config_file CONFIG -m playground.train ...``)."""
    import subprocess

    child = "from playground.core.distributed import launcher_config_file; print(launcher_config_file())"
    parent = f"import subprocess, sys; sys.exit(subprocess.run([sys.executable, '-c', {child!r}]).returncode)"
    expected = str(tmp_path.resolve() / "ds/zero3.yaml")
    for flag, found in ((["--config_file", "ds/zero3.yaml"], expected), (["--config_file=ds/zero3.yaml"], expected),
                        (["--use_deepspeed"], "None")):  # no file: Resume's command repeats the recorded flags
        result = subprocess.run([sys.executable, "-c", parent, "launch", *flag, "--num_processes", "2", "-m",
                                 "playground.train", "sft", "x.yaml"], cwd=tmp_path, capture_output=True, text=True,
                                env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])), check=True)
        assert result.stdout.strip() == found


def test_ppo_on_one_process_is_not_refused(monkeypatch):
    from playground.train import ppo

    monkeypatch.setattr(ppo, "train", lambda cfg, folder, resume: "finished")
    assert ppo.main(PPOConfig(), RunFolder(Path("unused"))) == "finished"
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(DistributedError, match="each of the 2 processes would run a whole PPO"):
        ppo.main(PPOConfig(), RunFolder(Path("unused")))


# ---------------------------------------------------------------------------------------------- commands shown


def test_ppo_is_offered_no_accelerate_command(tmp_path):
    from playground.ui.train_tab import commands_by_hand, run_commands

    with pytest.raises(JobError, match="PPO runs on one process only"):
        command("ppo", tmp_path / "c.yaml", launcher="accelerate")
    with pytest.raises(JobError, match="Unknown launcher 'torchrun'"):
        command("sft", tmp_path / "c.yaml", launcher="torchrun")
    config = tmp_path / "config.yaml"
    for stage in ("sft", "reward", "dpo", "ppo"):
        shown = [run_commands(stage, config), several_gpus_text(stage, config),
                 commands_by_hand(stage, types.SimpleNamespace(name="x"), types.SimpleNamespace(runs_dir=tmp_path))]
        for text in shown:
            offered = any(line.startswith("accelerate launch") for line in text.splitlines())
            assert offered == (stage != "ppo"), (stage, text)
    assert "PPO runs on one process" in several_gpus_text("ppo", config)
    assert several_gpus_text("dpo", config, " --resume").splitlines()[1] == \
        shell_command("dpo", config, launcher="accelerate") + " --resume"


def test_the_app_starts_a_run_on_its_configs_processes(tmp_path):
    config = tmp_path / "config.yaml"
    assert run_command("sft", config) == [sys.executable, "-m", "playground.train", "sft", str(config)]
    # every setting accelerate would otherwise take from the user's default accelerate config is given
    assert run_command("dpo", config, resume=True, processes=4, port=29617) == [
        "accelerate", "launch", "--multi_gpu", "--num_machines", "1", "--num_processes", "4", "--mixed_precision",
        "no", "--main_process_port", "29617", "-m", "playground.train", "dpo", str(config), "--resume"]
    with pytest.raises(JobError, match="PPO runs on one process only"):
        run_command("ppo", config, processes=2)
    with pytest.raises(JobError, match="not a multi-process launch"):
        command("sft", config, launcher="accelerate", processes=1)
    # what the Train and Runs tabs show: the one accelerate line the app runs, or python and the several-GPU hint
    assert launch_text("kto", config, 2) == shell_command("kto", config, launcher="accelerate", processes=2)
    assert launch_text("kto", config, 2).startswith(
        "accelerate launch --multi_gpu --num_machines 1 --num_processes 2 --mixed_precision no -m ")
    assert launch_text("sft", config) == f"{shell_command('sft', config)}\n{several_gpus_text('sft', config)}"


def test_processes_is_a_setting_of_every_stage_and_ppo_takes_only_one():
    assert SFTConfig().processes == 1 and KTOConfig(processes=8).processes == 8
    with pytest.raises(ConfigError, match="between 1 and 64") as error:
        SFTConfig(processes=0)
    assert error.value.field == "processes"
    with pytest.raises(ConfigError, match="PPO runs on one process only"):
        PPOConfig(processes=2)


def test_start_refuses_more_processes_than_gpus_but_not_cpu_processes(tiny_base, settings, monkeypatch):
    import torch

    from playground.train.checks import check_inputs

    cfg = SFTConfig(base_model=str(tiny_base), processes=3, data_dir=str(settings.data_dir))
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    check_inputs(cfg, settings)  # no GPU: three CPU processes over gloo
    monkeypatch.setattr(os, "cpu_count", lambda: 2)  # but not more processes than cores
    with pytest.raises(ConfigError, match="must be at most 2: this machine has no GPU.*2 CPU core") as error:
        check_inputs(cfg, settings)
    assert error.value.field == "processes"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ConfigError, match="must be at most 2: this machine has 2 GPU") as error:
        check_inputs(cfg, settings)
    assert error.value.field == "processes"
    check_inputs(SFTConfig(base_model=str(tiny_base), processes=2, data_dir=str(settings.data_dir)), settings)


def test_the_train_tab_shows_the_accelerate_command_for_several_processes_and_ppo_offers_one(settings):
    import dataclasses

    from playground.ui.train_tab import _component, commands_by_hand, run_commands

    shown = commands_by_hand("reward", RewardConfig(name="rm", processes=3), settings)
    commands = [line for line in shown.splitlines() if not line.startswith("#")]
    assert commands == [f"accelerate launch --multi_gpu --num_machines 1 --num_processes 3 --mixed_precision no "
                        f"-m playground.train reward rm.yaml "
                        f"--run-dir {settings.runs_dir / 'rm'}"]
    started = run_commands("reward", Path("runs/rm/config.yaml"), 3).splitlines()
    assert started[1:] == ["accelerate launch --multi_gpu --num_machines 1 --num_processes 3 --mixed_precision no "
                           "-m playground.train reward "
                           "runs/rm/config.yaml"]
    field = next(f for f in dataclasses.fields(PPOConfig) if f.name == "processes")
    ppo_box = _component(PPOConfig, field, 1, settings)
    assert ppo_box.value == 1 and ppo_box.interactive is False and "one process" in ppo_box.info
    assert _component(SFTConfig, field, 1, settings).interactive is not False


# ---------------------------------------------------------------------------------------------- Stop, together


def test_from_main_process_is_the_value_itself_on_one_process():
    assert distributed.from_main_process(True) is True and distributed.from_main_process(False) is False


def _stop_worker(rank: int, init_file: str, out: str) -> None:
    """One of two gloo processes: each asks whether to stop, only rank 0 having seen a STOP file."""
    import torch.distributed as dist

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2")
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        answers = [distributed.from_main_process(rank == 0), distributed.from_main_process(rank == 1)]
    finally:
        dist.destroy_process_group()
    Path(out, f"{rank}.json").write_text(json.dumps(answers))


def test_every_process_stops_when_the_main_one_saw_stop(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_stop_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    # Rank 0 read STOP, rank 1 not yet: both stop. Rank 1 read a STOP that rank 0 had not seen: neither stops.
    assert [json.loads((tmp_path / f"{rank}.json").read_text()) for rank in (0, 1)] == [[True, False]] * 2
