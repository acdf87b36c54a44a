"""``python -m bench`` — run every benchmark and rewrite the figures in docs/BENCHMARKS.md.

Usage: HF_HUB_OFFLINE=1 python -m bench [--only sft,reward] [--quick] [--dry-run]

Each benchmark runs as its own process (``python -m bench.NAME`` with the arguments below) and prints Markdown: a
table with a baseline measured in the same run, and ``ratio`` lines. This runner puts that output into
docs/BENCHMARKS.md between the markers ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` of the benchmark's
section (a section without markers gets a new one at the end), rewrites the machine and date block at the top and
the summary of ratios, and leaves the prose around them alone — re-read it when a figure moves a lot.

``--quick`` runs each benchmark with smaller settings (minutes instead of about an hour on 2 CPU cores); the
figures are then marked as quick.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "BENCHMARKS.md"


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    arguments: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()
    target: str = ""


BENCHMARKS = (
    Benchmark("generation", "Generation: streaming vs plain generate; two panes vs one", (), ("--repeats", "1"),
              "ours / plain ≥ 0.95"),
    Benchmark("backends", "Decoding: llama.cpp vs transformers fp32; greedy agreement", (),
              ("--repeats", "1", "--prompts", "6"), "llama.cpp / transformers ≥ 2"),
    Benchmark("startup", "Start-up: page, and first answers on an empty data dir", (), ("--repeats", "1"),
              "page ≤ 5 s, first answers ≤ 60 s"),
    Benchmark("leaderboard", "Leaderboard bootstrap, 100,000 votes", (), ("--repeats", "1"), "≤ 2 s"),
    Benchmark("votes", "Vote latency, 8 clients at once", (), ("--votes", "10"), "durable, near the HTTP floor"),
    Benchmark("raters", "Many raters on one app: 20 logged-in raters through the HTTP API", (),
              ("--seconds", "30", "--pairs", "2000"), "every acknowledged vote stored"),
    Benchmark("sft", "SFT training throughput vs a plain TRL script", (),
              ("--steps", "3", "--warmup", "1", "--repeats", "1", "--sides", "plain-matched,ours"), "ratio ≥ 1.0"),
    Benchmark("reward", "Reward-model training throughput vs a plain TRL script", (),
              ("--steps", "3", "--warmup", "1", "--repeats", "1"), "ratio ≥ 1.0"),
    Benchmark("lecture", "The lecture on this machine: SFT → reward → PPO → DPO on the default base",
              ("--heldout", "48"), ("--sft-steps", "5", "--reward-steps", "5", "--ppo-steps", "2", "--dpo-steps", "5",
                                    "--heldout", "12"),
              "PPO: held-out score +0.5 SD of the SFT policy's"),
    Benchmark("ppo", "PPO: one shared base model vs four model copies (memory, time per step)",
              ("--gradient-checkpointing", "--steps", "1", "--warmup", "1"),
              ("--gradient-checkpointing", "--steps", "1", "--warmup", "1", "--batch", "4", "--response", "16"),
              "memory ≤ 0.5×"),
    Benchmark("heldout", "Instruction tuning on held-out task families", (), ("--max-steps", "5", "--per-family", "4"),
              "gain ≥ +20 points, train + evaluate ≤ 10 min"),
    Benchmark("rl", "PPO vs GRPO vs RLOO: held-out reward against wall time, memory and KL", ("--doc", ""),
              ("--quick", "--doc", ""), "held-out reward up, KL bounded"),
    Benchmark("judge", "The AI judge on pairs whose better answer is known", (), ("--pairs", "4", "--tokens", "60"),
              "picks the better answer, orders agree"),
)


def machine() -> str:
    """CPU model, cores, memory, GPU and library versions, one line each."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() \
        else platform.processor()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    # Versions from the installed packages' metadata: importing them all would take ~10 s; only torch is imported
    # (in a child process, so this one stays light), for the GPU's name.
    versions = " · ".join(f"{name} {_version(name)}" for name in ("torch", "transformers", "trl", "peft", "gradio"))
    gpu = subprocess.run([sys.executable, "-c", "import torch; "
                          "print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none')"],
                         capture_output=True, text=True).stdout.strip() or "?"
    return (f"- CPU: {cpu}, {os.cpu_count()} cores; memory {memory:.0f} GiB; GPU: {gpu}\n"
            f"- Python {platform.python_version()} · {versions}")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def run(benchmark: Benchmark, quick: bool) -> tuple[str, str, float]:
    """(command, Markdown output, seconds) of one benchmark, run in its own process."""
    arguments = benchmark.quick if quick else benchmark.arguments
    command = ["python", "-m", f"bench.{benchmark.name}", *arguments]
    started = time.monotonic()
    done = subprocess.run([sys.executable, *command[1:]], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, HF_HUB_OFFLINE="1"))
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return "HF_HUB_OFFLINE=1 " + " ".join(command), done.stdout.strip(), time.monotonic() - started


def ratios(output: str) -> list[str]:
    """The lines of a benchmark's output that state a ratio to its baseline."""
    return [line.strip().lstrip("-* ").strip() for line in output.splitlines()
            if re.search(r"\bratio\b", line, re.I)]  # the word: not "generation", "iteration"…


def block(name: str, body: str) -> str:
    return f"<!-- bench:{name} -->\n{body}\n<!-- /bench:{name} -->"


def replace_block(text: str, name: str, body: str, title: str) -> str:
    """Put ``body`` between the markers of ``name``, or append a new section holding them."""
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: block(name, body), text, count=1)
    return text.rstrip() + f"\n\n## {title} (`bench/{name}.py`)\n\n{block(name, body)}\n"


def rewrite(text: str, results: dict[str, tuple[str, str, float]], quick: bool, header: str) -> str:
    """The document with fresh figures: machine/date block, summary of ratios, and each benchmark's output."""
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    kind = " (quick settings: `python -m bench --quick`)" if quick else ""
    text = replace_block(text, "machine", f"Last full rewrite by `python -m bench`: {stamp}{kind}\n\n{header}",
                         "Machine")
    summary = ["| benchmark | target | ratios to the baseline measured in the same run | command |",
               "|---|---|---|---|"]
    for benchmark in BENCHMARKS:
        if benchmark.name in results:
            command, output, seconds = results[benchmark.name]
            summary.append(f"| {benchmark.name} | {benchmark.target} | "
                           f"{'<br>'.join(ratios(output)) or 'see its section'} | `{command}` ({seconds:.0f} s) |")
            body = f"Command: `{command}` — {stamp}{kind}, {seconds:.0f} s\n\n{output}"
            text = replace_block(text, benchmark.name, body, benchmark.title)
    return replace_block(text, "summary", "\n".join(summary), "Summary")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help=f"comma-separated subset of {', '.join(b.name for b in BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="smaller settings: minutes instead of about an hour")
    parser.add_argument("--dry-run", action="store_true", help="print the new document instead of writing it")
    args = parser.parse_args(argv)
    chosen = [b for b in BENCHMARKS if not args.only or b.name in args.only.split(",")]
    unknown = set((args.only or "").split(",")) - {b.name for b in BENCHMARKS} - {""}
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    results = {}
    for benchmark in chosen:
        print(f"# {benchmark.name}…", file=sys.stderr, flush=True)
        results[benchmark.name] = run(benchmark, args.quick)
        print(results[benchmark.name][1], file=sys.stderr, flush=True)
    document = rewrite(DOC.read_text() if DOC.exists() else "# Benchmarks\n", results, args.quick, machine())
    if args.dry_run:
        print(document)
    else:
        DOC.write_text(document)
        print(f"wrote {DOC}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
