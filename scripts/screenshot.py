"""Take the README's screenshot of the Compare tab: launch the app, send the lecture's prompt, wait, capture.

Usage: python scripts/screenshot.py [--out docs/compare-tab.png] [--model-a KEY] [--model-b KEY]
Needs Playwright for Python and Debian's chromium (/usr/bin/chromium); uses the offline default models.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "Explain the moon landing to a 6 year old in a few sentences."
CHROMIUM_ARGS = ["--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-quic", "--disable-gpu"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "docs" / "compare-tab.png"))
    parser.add_argument("--model-a", default="gemma-3-270m")
    parser.add_argument("--model-b", default="smollm2-135m-instruct")
    args = parser.parse_args()
    from playwright.sync_api import expect, sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--model-a", args.model_a,
                            "--model-b", args.model_b], cwd=ROOT, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/gradio_api/info", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1150})
            page.goto(f"http://127.0.0.1:{port}/")
            page.get_by_role("tab", name="Compare", exact=True).click()  # the app opens on the Lecture tab
            page.get_by_label("Prompt", exact=True).fill(PROMPT)
            page.get_by_role("button", name="Send").click()
            for side in ("left", "right"):
                expect(page.locator(f"#stats-{side}")).to_contain_text("finished:", timeout=600_000)
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=args.out, full_page=False)
            browser.close()
    finally:
        app.terminate()
        app.wait(10)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
