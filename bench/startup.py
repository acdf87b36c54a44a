"""Benchmark: seconds from ``python app.py`` to the page answering, vs a bare Gradio app started the same way; and
on an empty data dir, seconds to the first token in each pane for a prompt sent the moment the page answers.

Run:  python -m bench.startup [--repeats 3] [--skip-first-tokens]
1. Page: target ≤ 5 s. Start-up is Gradio's import and launch plus building the tabs; the bare app (one Textbox)
   is the floor this machine allows, measured in the same run.
2. First answers, target ≤ 60 s on 2 idle cores: the app as shipped (the default models are prepared from start-up,
   on llama.cpp when it is installed) against the path it replaced, measured in the same run on its own empty data
   dir: ``--no-prepare`` and the float32 dtype (transformers: each packaged GGUF imported at the first Send).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BARE_APP = "import gradio as gr, sys\nwith gr.Blocks() as d:\n    gr.Textbox()\nd.launch(server_port=int(sys.argv[1]))\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def time_to_page(command: list[str], port: int, timeout: float = 120) -> float:
    """Start ``command`` and poll http://127.0.0.1:PORT/ until it answers 200; return the seconds taken."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - started < timeout:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"{command} did not answer within {timeout} s")
    finally:
        process.terminate()
        process.wait(10)


FIRST_PROMPT = "Explain the moon landing to a six year old."


def time_to_first_tokens(extra: list[str], dtype: str, timeout: float = 900) -> tuple[float, float, float]:
    """Start ``python app.py`` on an empty data dir; the moment the page answers, send FIRST_PROMPT through the
    Compare endpoint; return seconds from the start to (page served, first token left, first token right)."""
    from gradio_client import Client

    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    with tempfile.TemporaryDirectory() as data:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--data-dir", data, *extra],
                                   cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                        if response.status == 200:
                            break
                except OSError:
                    time.sleep(0.05)
                if time.perf_counter() - started > timeout:
                    raise TimeoutError("the page did not answer")
            page = time.perf_counter() - started
            client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            from playground.core.settings import DEFAULT_MODEL_A, DEFAULT_MODEL_B

            job = client.submit(FIRST_PROMPT, DEFAULT_MODEL_A, DEFAULT_MODEL_B, "auto", "auto", "", 0.7, 0.9, 50, 32,
                                1.1, 42, False, dtype, "none", api_name="/compare")
            first: list[float | None] = [None, None]
            while None in first and time.perf_counter() - started < timeout:
                outputs = job.outputs()
                if outputs:
                    chats = outputs[-1][3:5]  # prompt box, two titles, then the two conversations
                    for side, chat in enumerate(chats):
                        content = chat[-1].get("content") if chat else None
                        if isinstance(content, list):  # the Chatbot's message parts
                            content = "".join(part.get("text", "") for part in content)
                        if first[side] is None and content:
                            if str(content).startswith("Error"):
                                raise RuntimeError(f"pane {side}: {content}")
                            first[side] = time.perf_counter() - started
                if job.done() and None in first:
                    raise RuntimeError(f"the answer ended without tokens: {job.outputs()[-1] if job.outputs() else job.exception()}")
                time.sleep(0.05)
            job.cancel()
            return page, first[0], first[1]
        finally:
            process.terminate()
            process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-first-tokens", action="store_true", help="only time the page")
    args = parser.parse_args()
    ours, bare = [], []
    with tempfile.TemporaryDirectory() as data, tempfile.NamedTemporaryFile("w", suffix=".py") as bare_app:
        bare_app.write(BARE_APP)
        bare_app.flush()
        for _ in range(args.repeats):
            port = free_port()
            bare.append(time_to_page([sys.executable, bare_app.name, str(port)], port))
            port = free_port()
            ours.append(time_to_page([sys.executable, "app.py", "--port", str(port), "--data-dir", data], port))
    print(f"python app.py → page answers: median {statistics.median(ours):.2f} s (runs: "
          f"{', '.join(f'{t:.2f}' for t in ours)})")
    print(f"bare Gradio app → page answers: median {statistics.median(bare):.2f} s (runs: "
          f"{', '.join(f'{t:.2f}' for t in bare)})")
    print(f"ratio app / bare Gradio: {statistics.median(ours) / statistics.median(bare):.2f}")
    if args.skip_first_tokens:
        return
    print("\nFirst answers on an empty data dir (prompt sent when the page answers; seconds from `python app.py`):\n")
    print("| path | page served | first token, left (gemma-3-270m) | first token, right (smollm2-135m-instruct) |")
    print("|---|---|---|---|")
    rows = {}
    for name, extra, dtype in (("before: transformers fp32, imported at the first Send", ["--no-prepare"], "float32"),
                               ("now: prepared from start-up, llama.cpp when installed", [], "auto")):
        rows[name] = time_to_first_tokens(extra, dtype)
        page, left, right = rows[name]
        print(f"| {name} | {page:.1f} | {left:.1f} | {right:.1f} |")
    before, now = (max(r[1:]) for r in rows.values())
    print(f"\nratio both panes answering, now / before: {now / before:.2f}")


if __name__ == "__main__":
    main()
