"""Benchmark: seconds from ``python app.py`` to the page answering, vs a bare Gradio app started the same way.

Run:  python -m bench.startup [--repeats 3]
Target ≤ 5 s. Models load lazily on first use, so start-up is Gradio's import and launch plus building the tabs;
the bare app (one Textbox) is the floor this machine allows, measured in the same run.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
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


if __name__ == "__main__":
    main()
