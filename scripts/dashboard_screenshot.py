"""Regenerate docs/dashboard.png: a real `yolowatch serve` with demo traffic, in Debian's chromium.

.venv/bin/python scripts/dashboard_screenshot.py [--out docs/dashboard.png]
.venv/bin/python scripts/dashboard_screenshot.py --quality [--out docs/dashboard-quality.png]

--quality runs the server on a 60x clock and `yolowatch traffic` (normal, then drifted, then malformed
uploads), pins the normal phase as the drift baseline, and shows the Quality tab and the Alerts panel.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def _serving(port: int, env: dict[str, str] | None = None) -> Iterator[str]:
    """A real `yolowatch serve` on a throwaway database, healthy, until the block ends; its base URL."""
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "yolowatch", "serve", "--port", str(port), "--db", str(Path(tmp) / "d.db")]
        server = subprocess.Popen(command, env={**os.environ, **(env or {})})
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
            yield base
        finally:
            server.terminate()
            server.wait(timeout=30)


@contextlib.contextmanager
def _dashboard(base: str, height: int) -> Iterator[Page]:
    """The dashboard open in Debian's headless chromium, its charts drawn, on the 1h range."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": height})
        page.goto(f"{base}/dashboard/")
        page.wait_for_selector(".deployment .chart canvas")
        page.click("button[data-range='1h']")
        yield page
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--port", type=int, default=8799)
    parser.add_argument("--quality", action="store_true", help="drift, holdout and alerts instead of the overview")
    args = parser.parse_args()
    if args.quality:
        quality(args.out or ROOT / "docs" / "dashboard-quality.png", args.port)
        return
    out = args.out or ROOT / "docs" / "dashboard.png"
    with _serving(args.port) as base:
        from yolowatch.demo.shapes import sample_image

        for i in range(40):  # demo traffic: shapes images, and a few refused uploads
            image = sample_image(i, "val", 1)[0]
            httpx.post(f"{base}/predict", files={"file": ("s.jpg", image)}, data={"conf": "0.25"}, timeout=60)
            if i % 13 == 0:
                httpx.post(f"{base}/predict", files={"file": ("notes.txt", b"not an image")}, timeout=60)
        time.sleep(1.5)
        with _dashboard(base, 1250) as page:
            page.wait_for_timeout(1500)
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
    print(f"wrote {out}")


def quality(out: Path, port: int, scale: float = 60.0) -> None:
    anchor = time.time()

    def server_time(real: float) -> int:
        return int(anchor + (real - anchor) * scale)

    with _serving(port, {"YOLOWATCH_TIME_SCALE": str(scale), "YOLOWATCH_TIME_ANCHOR": str(anchor)}) as base:
        started = time.time()
        traffic = [sys.executable, "-m", "yolowatch", "traffic", "--url", f"{base}/predict", "--rate", "40",
                   "--param", "imgsz=320", "--count", "5000"]  # fmt: skip
        subprocess.run([*traffic, "--plan", "normal:20"], check=True, stdout=subprocess.DEVNULL)
        normal_end = time.time()
        subprocess.run([*traffic, "--plan", "drifted:20,malformed:8"], check=True, stdout=subprocess.DEVNULL)
        time.sleep(4)  # the last minutes are written and evaluated
        window = {"start": server_time(started) // 60 * 60 + 60, "end": server_time(normal_end) // 60 * 60}
        httpx.put(f"{base}/api/deployments/demo/baseline", json=window, timeout=10).raise_for_status()
        with _dashboard(base, 1300) as page:
            page.click("button[data-tab=quality]")
            page.wait_for_selector(".chart[data-signal=confidence] canvas", timeout=60_000)
            page.wait_for_timeout(1000)
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
