"""Regenerate docs/dashboard.png: a real `yolowatch serve` with demo traffic, in Debian's chromium.

.venv/bin/python scripts/dashboard_screenshot.py [--out docs/dashboard.png]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    parser.add_argument("--port", type=int, default=8799)
    args = parser.parse_args()
    base = f"http://127.0.0.1:{args.port}"
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "demo.db"
        server = subprocess.Popen(
            [sys.executable, "-m", "yolowatch", "serve", "--port", str(args.port), "--db", str(db)]
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("serve did not become healthy")
                time.sleep(0.3)
            from yolowatch.demo.shapes import sample_image

            for i in range(40):  # demo traffic: shapes images, and a few refused uploads
                image = sample_image(i, "val", 1)[0]
                httpx.post(f"{base}/predict", files={"file": ("s.jpg", image)}, data={"conf": "0.25"}, timeout=60)
                if i % 13 == 0:
                    httpx.post(f"{base}/predict", files={"file": ("notes.txt", b"not an image")}, timeout=60)
            time.sleep(1.5)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1280, "height": 1250})
                page.goto(f"{base}/dashboard/")
                page.wait_for_selector(".deployment .chart canvas")
                page.click("button[data-range='1h']")
                page.wait_for_timeout(1500)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out))
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
