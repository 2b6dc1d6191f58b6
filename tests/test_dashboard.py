"""The dashboard in headless Chromium (Debian's, through Playwright) against a real `yolowatch serve`.

Screenshots land in tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import numpy as np
import pytest
import requests
from playwright import sync_api as playwright_api
from starlette.applications import Starlette
from starlette.routing import Mount

from helpers import (
    FakeClock,
    free_port,
    record_busy_hours,
    record_fortnight,
    stop_process,
    uvicorn_in_thread,
    wait_healthy,
    wait_until,
)
from yolowatch.admin import admin_router
from yolowatch.framesample import FrameSampler, SampleRules
from yolowatch.monitor import Monitor
from yolowatch.recorder import Recorder
from yolowatch.records import (
    STAGES,
    AlertState,
    DetectionSummary,
    GoldenRun,
    HealthResult,
    Notification,
    ProcessInfo,
)
from yolowatch.store import Store, StoreWriter

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
EXAMPLE = Path(__file__).parents[1] / "examples" / "shapes.jpg"
XSS_PATH = "/<img src=x onerror=alert('xss')>"

if not CHROMIUM.exists():  # scripts/test installs it; say so instead of passing without a browser
    pytest.fail(f"{CHROMIUM} is missing: run ./scripts/test, which installs Debian's chromium", pytrace=False)


class Served:
    """A `yolowatch serve` on a fixed port that a test can stop and start again on the same database."""

    def __init__(self, db: Path, env: dict[str, str] | None = None) -> None:
        self.db, self.env, self.port = db, env or {}, free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "yolowatch", "serve", "--port", str(self.port), "--db", str(self.db)]
        self.process = subprocess.Popen(command, env={**os.environ, **self.env})
        wait_healthy(self.base, self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


def _predict(base: str, count: int) -> None:
    for _ in range(count):
        with EXAMPLE.open("rb") as image:
            assert requests.post(f"{base}/predict", files={"file": image}, timeout=60).status_code == 200


async def _second_deployment(db: Path) -> None:
    """Another deployment in the same file (as a sidecar elsewhere would write), so the list has two rows."""
    clock = FakeClock(time.time() - 600)
    store = Store(db, clock=clock)
    recorder = Recorder(clock=clock)
    writer = StoreWriter(store, recorder, "elsewhere")
    await store.register_deployment("beta", region="eu-west-1", model="other.pt")
    for i in range(3):
        recorder.record_request("beta", "POST", "/predict", 200, 900_000, f"b{i}")  # slow: a "warning" row
    assert await writer.flush()
    # Its prober (in that other process) last saw it failing.
    await store.save_health("beta", HealthResult(False, 503, 12.5, "upstream answered 503", int(time.time() * 1000)))
    await store.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    db = tmp_path_factory.mktemp("dash") / "dash.db"
    server = Served(db)
    server.start()
    try:
        _predict(server.base, 30)
        assert requests.get(server.base + XSS_PATH, timeout=10).status_code == 404  # a logged request path
        with ThreadPoolExecutor(1) as pool:  # Playwright's sync API owns this thread's event loop
            pool.submit(asyncio.run, _second_deployment(db)).result()
        wait_until(  # everything written before any page looks
            lambda: requests.get(f"{server.base}/api/monitoring", timeout=10).json()["totalRequests"] >= 34,
            "the 34 requests to be written",
        )
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield instance
        instance.close()


@pytest.fixture
def page(browser, served: Served):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1280, "height": 1100})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=served.base)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.dialogs = dialogs
    page.goto(f"{served.base}/dashboard/")
    page.wait_for_selector(".deployment[data-id=demo] .chart canvas", timeout=20_000)
    yield page
    context.close()


def _number(text: str) -> float:
    return float(re.sub(r"[^0-9.]", "", text))


def test_cards_show_the_same_numbers_as_the_api(page, served: Served) -> None:  # type: ignore[no-untyped-def]
    """The top cards and the demo card show the API's numbers, and a narrow page does not scroll sideways."""
    api = requests.get(f"{served.base}/api/monitoring", timeout=10).json()
    assert _number(page.inner_text("#card-requests .value")) == api["totalRequests"]
    assert _number(page.inner_text("#card-active .value")) == api["activeDeployments"] == 2
    # Shown to two decimals below 10 %, to one from there (format.js fmtPct): equal to within half the last digit.
    shown_to = 0.05 if api["errorRate"] >= 0.1 else 0.005
    assert _number(page.inner_text("#card-errors .value")) == pytest.approx(api["errorRate"] * 100, abs=shown_to)
    p95 = api["p95LatencyMs"]
    assert _number(page.inner_text("#card-p95 .value")) == pytest.approx(p95, abs=0.05 if p95 < 100 else 0.5)
    card = page.locator(".deployment[data-id=demo]")
    demo = next(row for row in api["deployments"] if row["id"] == "demo")
    assert _number(card.locator(".metric .value").first.inner_text()) == demo["requests"]
    assert card.locator(".heart.up").count() == 1  # the probe's green heart
    assert card.locator(".chart").count() == 5
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-desktop.png"), full_page=True)
    page.set_viewport_size({"width": 420, "height": 900})
    # The charts follow the new width, so the narrow page does not scroll sideways.
    page.wait_for_function("() => document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    page.screenshot(path=str(ARTIFACTS / "dashboard-narrow.png"), full_page=True)


def test_health_hearts_and_check_now(page) -> None:  # type: ignore[no-untyped-def]
    """A failing probe shows a red heart with its error; Check now probes again and shows a green heart."""
    beta = page.locator(".deployment[data-id=beta]")
    assert beta.locator(".heart.down").count() == 1
    assert beta.locator(".health .error").inner_text() == "upstream answered 503"
    demo = page.locator(".deployment[data-id=demo]")
    with page.expect_response(lambda r: r.url.endswith("/api/deployments/demo/health/check")) as checked:
        demo.locator("button.check").click()
    assert checked.value.json()["healthy"] is True
    demo.locator(".heart.up").wait_for()
    assert demo.locator(".health").inner_text().strip().split("\n")[1].endswith("ms")


def test_range_selector_redraws_the_charts(page) -> None:  # type: ignore[no-untyped-def]
    """Picking the 7d range loads that range's points and redraws the five charts."""
    demo = page.locator(".deployment[data-id=demo]")
    with page.expect_response(lambda r: "/api/deployments/demo/metrics?range=7d" in r.url) as answered:
        demo.locator("button[data-range='7d']").click()
    assert len(answered.value.json()["sparkline"]) == 84
    assert demo.locator("button[data-range='7d']").get_attribute("class") == "active"
    demo.locator(".chart canvas").first.wait_for()
    assert demo.locator(".chart").count() == 5


def test_views_and_table_sorting(page) -> None:  # type: ignore[no-untyped-def]
    """The compact and table views list every deployment, and the table sorts by the clicked column."""
    page.click("[data-view=compact]")
    assert page.locator(".compact .item").count() == 2
    page.click("[data-view=table]")
    names = lambda: page.locator("tbody tr td:first-child").all_inner_texts()  # noqa: E731
    assert names() == ["beta", "demo"]
    page.click("th[data-column=name]")  # again: descending
    assert names() == ["demo", "beta"]
    page.click("th[data-column=requests]")
    assert names() == ["beta", "demo"]  # 3 requests before 31
    page.click("th[data-column=region]")
    assert page.locator("th.sorted").inner_text().startswith("Region")
    page.click("[data-view=cards]")
    assert page.locator(".deployment").count() == 2


def test_logs_filter_and_copy(page) -> None:  # type: ignore[no-untyped-def]
    """The Errors filter shows only warnings and errors, and Copy puts those lines on the clipboard."""
    logs = page.locator(".deployment[data-id=demo] .log-list")
    logs.locator(".log").first.wait_for()
    assert logs.locator(".log[data-severity=INFO]").count() > 0
    page.locator(".deployment[data-id=demo] .logs-actions button", has_text="Errors").click()
    page.wait_for_function(
        "() => { const rows = [...document.querySelectorAll('.deployment[data-id=demo] .log')];"
        " return rows.length > 0 && rows.every(e => ['WARNING', 'ERROR'].includes(e.dataset.severity)); }"
    )
    severities = set(logs.locator(".log").evaluate_all("rows => rows.map(r => r.dataset.severity)"))
    assert severities == {"WARNING"}  # the one 404
    page.locator(".deployment[data-id=demo] .logs-actions button", has_text="Copy").click()
    page.wait_for_function("() => document.querySelector('#status').textContent.startsWith('copied')")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert "WARNING GET /<img" in copied and "INFO" not in copied
    page.locator(".deployment[data-id=demo] .logs-actions button", has_text="All").click()
    page.wait_for_function("() => document.querySelectorAll('.deployment[data-id=demo] .log').length === 20")


def test_markup_in_a_logged_path_shows_as_text(page) -> None:  # type: ignore[no-untyped-def]
    """A logged path holding HTML shows as text and runs nothing."""
    logs = page.locator(".deployment[data-id=demo] .log-list")
    logs.locator(".log").first.wait_for()
    page.locator(".deployment[data-id=demo] .logs-actions button", has_text="Errors").click()
    message = page.locator(".log .message", has_text="onerror")
    message.wait_for()
    assert message.inner_text().startswith("GET /<img src=x onerror=alert('xss')> 404")
    assert page.locator("main img").count() == 0 and page.dialogs == []


def test_code_tab_has_this_deployments_url(page, served: Served) -> None:  # type: ignore[no-untyped-def]
    """Each snippet posts to this deployment's predict URL with a predict key placeholder and the predict options."""
    card = page.locator(".deployment[data-id=demo]")
    card.locator("[data-tab=code]").click()
    for language, expected in (("Python", "requests.post("), ("JavaScript", "new FormData()"), ("cURL", "curl -H")):
        card.locator(f"button[data-language={language}]").click()
        code = card.locator("pre.code").inner_text()
        assert expected in code and f"{served.base}/predict" in code and "YOUR_PREDICT_KEY" in code
        assert "conf" in code and "iou" in code and "imgsz" in code


def test_predict_tab_draws_the_boxes(page) -> None:  # type: ignore[no-untyped-def]
    """An image sent from the Predict tab comes back with its boxes drawn in their class colours."""
    card = page.locator(".deployment[data-id=demo]")
    card.locator("[data-tab=predict]").click()
    card.locator("input[type=file]").set_input_files(str(EXAMPLE))
    canvas = card.locator("canvas.predicted")
    canvas.wait_for(timeout=30_000)
    raw = card.locator("pre.raw").inner_text()
    results = json.loads(raw)["images"][0]["results"]
    assert int(canvas.get_attribute("data-boxes")) == len(results) > 0
    # The first box's left edge, half-way down, is painted in its class colour.
    first = results[0]
    x, y = round(first["box"]["x1"]), round((first["box"]["y1"] + first["box"]["y2"]) / 2)
    pixel = canvas.evaluate(f"c => Array.from(c.getContext('2d').getImageData({x}, {y}, 1, 1).data)")
    colours = ["#ff3b30", "#34c759", "#007aff", "#ff9500", "#af52de", "#00c7be"]
    expected = colours[first["class"] % len(colours)]
    want = [int(expected[i : i + 2], 16) for i in (1, 3, 5)]
    assert all(abs(a - b) <= 40 for a, b in zip(pixel[:3], want, strict=True)), (pixel, want)


def test_error_card_turns_red_after_a_burst_of_bad_uploads(page, served: Served) -> None:  # type: ignore[no-untyped-def]
    """The error-rate card turns red once refused uploads push the rate past 5 %."""
    assert "bad" not in (page.get_attribute("#card-errors", "class") or "")
    for _ in range(4):
        refused = requests.post(f"{served.base}/predict", files={"file": ("x.txt", b"no image")}, timeout=30)
        assert refused.status_code == 415
    wait_until(
        lambda: requests.get(f"{served.base}/api/monitoring", timeout=10).json()["errorRate"] > 0.05,
        "the refused uploads to push the error rate past 5 %",
    )
    page.click("#refresh")
    page.wait_for_selector("#card-errors.bad", timeout=10_000)


def test_page_recovers_after_the_server_restarts(page, served: Served) -> None:  # type: ignore[no-untyped-def]
    """While the server is down the page keeps its numbers under a banner, and recovers on its own."""
    before = page.inner_text("#card-requests .value")
    served.stop()
    page.click("#refresh")
    page.wait_for_selector("#banner:not([hidden])", timeout=10_000)
    assert "cannot reach" in page.inner_text("#banner")
    assert page.inner_text("#card-requests .value") == before  # what it last showed stays
    served.start()
    page.wait_for_selector("#banner", state="hidden", timeout=20_000)  # retried on its own
    page.wait_for_selector(".deployment[data-id=demo] .chart canvas")


def test_the_page_asks_for_the_key_once_per_session(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A keyed API makes the page ask for the key once per tab, refusing a wrong one and never storing it for good."""
    server = Served(tmp_path / "keyed.db", env={"YOLOWATCH_API_KEY": "dash-key"})
    server.start()
    try:
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{server.base}/dashboard/")
        page.wait_for_selector("#auth:not([hidden])")
        page.fill("#auth-key", "wrong")
        page.click("#auth button")
        page.wait_for_function("() => document.querySelector('#auth-error').textContent.includes('refused')")
        page.fill("#auth-key", "dash-key")
        page.click("#auth button")
        page.wait_for_selector("#auth", state="hidden")
        page.wait_for_function("() => document.querySelector('#card-active .value').textContent === '1'")
        page.reload()  # same tab: the key is remembered for the session
        page.wait_for_function("() => document.querySelector('#card-active .value').textContent === '1'")
        assert page.locator("#auth").is_hidden()
        assert page.evaluate("localStorage.length") == 0  # never kept beyond the session
        context.close()
    finally:
        server.stop()


async def _quality_history(db: Path) -> None:
    """'gamma': two weeks whose second week drifted, ending now; two holdout runs; a firing drift alert."""
    clock = FakeClock(time.time() - 14 * 86400)
    await record_fortnight(db, clock, drifting=("gamma",))
    store = Store(db)
    for score, when in ((0.90, time.time() - 8 * 86400), (0.86, time.time() - 86400)):
        store.clock = lambda when=when: when
        await store.save_holdout("gamma", "holdout", "d1", "model:x.pt", {"map50": score + 0.05, "map50_95": score,
                                                                          "images": 200, "details": {}})  # fmt: skip
    store.clock = time.time
    since = int(time.time()) - 3600
    state = AlertState("ConfidenceDrift", "gamma", "firing", since, since, 2e-9)
    note = Notification("ConfidenceDrift", "gamma", "firing", since, None, 2e-9, "warning", "look at recent images")
    await store.save_alerts([state], [note])
    await store.close()


@pytest.fixture(scope="module")
def quality_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    db = tmp_path_factory.mktemp("quality") / "quality.db"
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _quality_history(db)).result()
    server = Served(db)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_quality_tab_shows_drift_and_the_holdout_series(browser, quality_served: Served) -> None:  # type: ignore[no-untyped-def]
    """The Quality tab shows drift verdicts and the holdout series; the firing drift alert shows with its runbook."""
    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    page = context.new_page()
    page.goto(f"{quality_served.base}/dashboard/")
    card = page.locator(".deployment[data-id=gamma]")
    card.locator("[data-tab=quality]").click()
    confidence = card.locator(".chart[data-signal=confidence]")
    confidence.locator("canvas").wait_for(timeout=30_000)
    api = requests.get(f"{quality_served.base}/api/deployments/gamma/drift", timeout=30).json()
    signal = next(s for s in api["signals"] if s["signal"] == "confidence")
    assert confidence.locator(".verdict").inner_text() == "drift"
    assert f"KS {signal['ksStatistic']:.3f}" in confidence.locator(".stats").inner_text()
    assert card.locator(".chart[data-signal=boxSize] canvas").count() == 1
    holdout = card.locator(".chart.holdout")
    holdout.locator("canvas").wait_for()
    assert "mAP50-95 0.860" in holdout.locator(".stats").inner_text()
    # The firing alert: in the page's notifications panel and in the deployment's Alerts tab, with its runbook.
    panel = page.locator("#notifications .notification.firing[data-rule=ConfidenceDrift]").first
    assert "look at recent images" in panel.inner_text()
    card.locator("[data-tab=alerts]").click()
    row = card.locator(".alert-rules tr[data-rule=ConfidenceDrift]")
    row.wait_for()
    assert "firing" in row.inner_text().lower() and "checked every 1d" in row.inner_text()
    assert "look at recent images" in card.locator(".tab .notification-list").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    card.locator("[data-tab=quality]").click()
    confidence.locator("canvas").wait_for()
    page.screenshot(path=str(ARTIFACTS / "dashboard-quality.png"), full_page=True)
    context.close()


def test_pausing_a_monitor_and_its_snapshot_window_from_its_card(
    page, served: Served, request: pytest.FixtureRequest
) -> None:  # type: ignore[no-untyped-def]
    """The card's snapshot window and pause button change the deployment in the store, and show it."""
    card = page.locator(".deployment[data-id=demo]")
    demo = lambda: requests.get(f"{served.base}/api/deployments/demo", timeout=10).json()  # noqa: E731
    assert card.locator(".metric.snapshot select").input_value() == "1h"
    # The module's server is shared: put the deployment back as it was, whatever happens here.
    restore = {"state": "active", "snapshotWindow": "1h"}
    request.addfinalizer(lambda: requests.patch(f"{served.base}/api/deployments/demo", json=restore, timeout=10))
    with page.expect_response(lambda r: r.url.endswith("/api/deployments/demo") and r.request.method == "PATCH"):
        card.locator(".metric.snapshot select").select_option("5m")
    assert demo()["snapshotWindow"] == "5m" and demo()["snapshot"]["window"] == "5m"
    page.wait_for_function(
        "() => document.querySelector('.deployment[data-id=demo] .metric.snapshot select').value === '5m'"
    )
    with page.expect_response(lambda r: r.url.endswith("/api/deployments/demo") and r.request.method == "PATCH"):
        card.locator("button.pause").click()
    card.locator(".monitor-state .pill.paused").wait_for()
    assert requests.get(f"{served.base}/api/deployments/demo", timeout=10).json()["state"] == "paused"
    card.locator("button.pause", has_text="Resume").click()
    card.locator(".monitor-state .pill").wait_for(state="detached")
    assert requests.get(f"{served.base}/api/deployments/demo", timeout=10).json()["state"] == "active"


ADMIN_KEY = "admin-key-never-in-a-snippet"


@pytest.mark.parametrize("predict_key", ["", "the-predict-key"], ids=["open-predict-route", "predict-key-set"])
def test_code_and_predict_tabs_never_use_the_admin_key(browser, tmp_path: Path, predict_key: str) -> None:  # type: ignore[no-untyped-def]
    """Regression (issue 10, the tabs used the admin key): snippets and predict requests use the predict key only."""
    env = {"YOLOWATCH_API_KEY": ADMIN_KEY} | ({"YOLOWATCH_PREDICT_API_KEY": predict_key} if predict_key else {})
    server = Served(tmp_path / "keys.db", env=env)
    server.start()
    try:
        context = browser.new_context(viewport={"width": 1280, "height": 1100})
        page = context.new_page()
        sent: list[str | None] = []  # the Authorization header of each predict request the page makes

        def on_request(request: playwright_api.Request) -> None:
            if request.url.endswith("/predict"):
                sent.append(request.headers.get("authorization"))

        page.on("request", on_request)
        page.goto(f"{server.base}/dashboard/")
        page.fill("#auth-key", ADMIN_KEY)
        page.click("#auth button")
        card = page.locator(".deployment[data-id=demo]")
        card.locator("[data-tab=code]").click()
        for language in ("Python", "JavaScript", "cURL"):
            card.locator(f"button[data-language={language}]").click()
            code = card.locator("pre.code").inner_text()
            assert ADMIN_KEY not in code and "Bearer YOUR_PREDICT_KEY" in code, code
        card.locator("[data-tab=predict]").click()
        card.locator("input[type=file]").set_input_files(str(EXAMPLE))
        if predict_key:  # the route answers 401: the tab asks for the predict key, then sends the image again
            field = card.locator("form.predict-key input[type=password]")
            field.fill(predict_key, timeout=30_000)
            card.locator("form.predict-key button[type=submit]").click()
        canvas = card.locator("canvas.predicted")
        canvas.wait_for(timeout=30_000)
        assert int(canvas.get_attribute("data-boxes")) > 0
        assert sent and sent[-1] == (f"Bearer {predict_key}" if predict_key else None), sent
        assert all(ADMIN_KEY not in (header or "") for header in sent), sent
        card.locator("[data-tab=code]").click()  # the key the user entered is what the snippets now show
        code = card.locator("pre.code").inner_text()
        assert ADMIN_KEY not in code and f"Bearer {predict_key or 'YOUR_PREDICT_KEY'}" in code, code
        context.close()
    finally:
        server.stop()


_CHART_WIDTHS = """() => [...document.querySelectorAll('.deployment[data-id=gamma] .chart')].map(box => {
    const canvas = box.querySelector('canvas');
    return canvas ? [canvas.getBoundingClientRect().width, box.clientWidth] : null; })"""


def test_metrics_and_quality_charts_follow_the_window_width(browser, quality_served: Served) -> None:  # type: ignore[no-untyped-def]
    """Regression (issue 10, the quality charts kept their first width): every chart redraws to fit a narrower page."""
    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    page = context.new_page()
    page.goto(f"{quality_served.base}/dashboard/")
    card = page.locator(".deployment[data-id=gamma]")
    card.locator("[data-tab=quality]").click()
    card.locator(".chart.holdout canvas").wait_for(timeout=30_000)
    before = page.evaluate(f"({_CHART_WIDTHS})()")
    assert len(before) == 8 and all(before), before  # five metrics charts, two histograms, the holdout series
    page.set_viewport_size({"width": 700, "height": 1400})
    # Each canvas shrinks to fill its narrower box (inside the box's 4 px padding on each side).
    page.wait_for_function(
        f"""(before) => ({_CHART_WIDTHS})().every(
            (now, i) => now && now[0] < before[i][0] && now[0] <= now[1] && now[0] >= now[1] - 12)""",
        arg=before,
        timeout=10_000,
    )
    context.close()


async def _fleet_traffic(db: Path) -> None:
    """'vision' served now from two hosts in two regions: host-eu (eu-west-1) answers 30 requests well, host-us
    (us-central1) 10, half of them 500s."""
    store = Store(db)
    try:
        await store.register_deployment("vision")
        for writer, host, region, requests_made, failed in (("eu", "host-eu", "eu-west-1", 30, 0),
                                                            ("us", "host-us", "us-central1", 10, 5)):  # fmt: skip
            recorder = Recorder()
            process = ProcessInfo(host, 100, "sidecar", region, started_s=int(time.time()))
            for i in range(requests_made):
                status = 500 if i < failed else 200
                recorder.record_request("vision", "POST", "/predict", status, 20_000, f"{writer}{i}")
            assert await StoreWriter(store, recorder, writer, process=process).flush()
    finally:
        await store.close()


@contextlib.contextmanager
def _admin_served(db: Path, sample_dir: Path | None = None, keys: tuple[str, ...] = ()) -> Iterator[str]:
    """The admin router and dashboard over `db`, in a real uvicorn in this process (no model needed); with
    `sample_dir`, as a process that samples 'demo' there."""
    store = Store(db)
    monitors = [] if sample_dir is None else [Monitor(store, "demo", sampler=FrameSampler(sample_dir, "demo"))]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await store.close()

    router = admin_router(store, monitors=monitors, keys=keys)
    with uvicorn_in_thread(Starlette(routes=[Mount("/", router)], lifespan=lifespan)) as base:
        yield base


def test_fleet_map_pins_each_region_in_its_health_colour(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The Fleet section pins each region where the API places it, green when healthy and red when not, larger
    with more requests; the hosts table shows each host's health; every request the page makes stays on its
    origin (the map's geometry is the vendored one) and the CSP refuses nothing."""
    db = tmp_path / "fleet.db"
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _fleet_traffic(db)).result()
    with _admin_served(db) as base:
        context = browser.new_context(viewport={"width": 1280, "height": 1100})
        page = context.new_page()
        requested: list[str] = []
        refused: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.on("console", lambda message: refused.append(message.text) if "Content Security" in message.text else None)
        page.goto(f"{base}/dashboard/")
        page.wait_for_selector("#fleet-map svg .land")
        regions = {r["region"]: r for r in requests.get(f"{base}/api/fleet", timeout=10).json()["regions"]}
        assert {name: r["healthy"] for name, r in regions.items()} == {"eu-west-1": True, "us-central1": False}
        pins = page.locator("#fleet-map circle.pin")
        assert pins.count() == 2
        shown = {}
        for name in regions:
            pin = page.locator(f"#fleet-map circle.pin[data-region='{name}']")
            shown[name] = pin.evaluate(
                "c => ({cls: c.getAttribute('class'), fill: getComputedStyle(c).fill, r: +c.getAttribute('r'),"
                " x: +c.getAttribute('cx'), y: +c.getAttribute('cy'), title: c.querySelector('title').textContent})"
            )
            # Equirectangular: x is longitude + 180, y is 84 - latitude (the map's top edge is 84 N).
            assert shown[name]["x"] == pytest.approx(regions[name]["longitude"] + 180, abs=0.01)
            assert shown[name]["y"] == pytest.approx(84 - regions[name]["latitude"], abs=0.01)
            assert shown[name]["title"].startswith(f"{name}: ")
        assert shown["eu-west-1"]["cls"] == "pin healthy" and shown["eu-west-1"]["fill"] == "rgb(18, 161, 80)"
        assert shown["us-central1"]["cls"] == "pin unhealthy" and shown["us-central1"]["fill"] == "rgb(217, 45, 32)"
        assert shown["eu-west-1"]["r"] > shown["us-central1"]["r"]  # 30 requests against 10
        assert "unhealthy" in shown["us-central1"]["title"] and "10 requests" in shown["us-central1"]["title"]
        rows = page.locator(".fleet-deployment[data-id=vision] tr[data-host]")
        assert rows.evaluate_all("rows => rows.map(r => r.dataset.host)") == ["host-eu", "host-us"]
        assert page.locator("tr[data-host=host-us] .pill").text_content() == "unhealthy"
        assert "75.0%" in page.locator("tr[data-host=host-eu] td.share").inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.locator("section.fleet").screenshot(path=str(ARTIFACTS / "dashboard-fleet.png"))
        context.close()
    origins = {urlsplit(url)._replace(path="", query="", fragment="").geturl() for url in requested}
    assert origins == {base}, requested
    assert f"{base}/dashboard/vendor/world-atlas/land-110m.json" in requested
    assert refused == []


# The Signals, Versions and Quality tabs over the YOLO signals: stage times, classes, request parameters, image
# properties, saturation and model versions.

DASHBOARD_JS = Path(__file__).parents[1] / "src" / "yolowatch" / "dashboard" / "js"
VERSION_A = "shapes-yolo.pt@0123456789ab"
VERSION_B = "<b>canary</b>.pt@ba9876543210"  # a client-named model: markup that must show as text
MARKUP_CLASS = "<img src=x onerror=alert('class')>"
_CLASS_DETECTIONS = """() => Object.fromEntries([...document.querySelectorAll(
    '.deployment[data-id=demo] table.classes tr[data-class]')].map(r => [r.dataset.class,
    +r.querySelector('td.detections').textContent.replace(/[^0-9]/g, '')]))"""


def _fmt_ms(ms: float) -> str:
    """As format.js fmtMs shows a time."""
    return f"{round(ms)} ms" if ms >= 100 else f"{ms:.1f} ms"


def _console_problems(page: playwright_api.Page) -> list[str]:
    """Console errors, CSP refusals and uncaught exceptions from now on (the list fills as they happen)."""
    problems: list[str] = []
    page.on(
        "console",
        lambda m: problems.append(m.text) if m.type == "error" or "Content Security" in m.text else None,
    )
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


def test_signals_tab_shows_the_same_figures_as_the_api(page, served: Served) -> None:  # type: ignore[no-untyped-def]
    """The Signals tab shows the API's per-class detections, every pipeline stage, the request parameters and the
    image properties of the real traffic, saturation cards (no GPU here), and follows the range selector."""
    problems = _console_problems(page)
    card = page.locator(".deployment[data-id=demo]")
    with page.expect_response(lambda r: "/api/deployments/demo/signals?range=24h" in r.url) as answered:
        card.locator("[data-tab=signals]").click()
    api = answered.value.json()
    card.locator(".panel.stages canvas").wait_for()
    assert api["classes"] and page.evaluate(_CLASS_DETECTIONS) == {c["name"]: c["detections"] for c in api["classes"]}
    stages = card.locator("table.stage-times tr[data-stage]")
    assert stages.evaluate_all("rows => rows.map(r => r.dataset.stage)") == list(STAGES)
    assert [s["stage"] for s in api["stages"]] == list(STAGES)
    for stage in api["stages"]:
        cells = card.locator(f"table.stage-times tr[data-stage={stage['stage']}] td").all_inner_texts()
        assert cells[2:5] == [_fmt_ms(stage[key]) for key in ("p50Ms", "p95Ms", "p99Ms")]
    params = card.locator("table.params tr[data-params]").evaluate_all("rows => rows.map(r => r.dataset.params)")
    assert params == [
        f"conf={p['conf']} iou={p['iou']} imgsz={p['imgsz']}".replace("None", "null") for p in api["params"]
    ]
    shown = card.locator("table.image-properties tr[data-property]").evaluate_all(
        "rs => rs.map(r => r.dataset.property)"
    )
    assert sorted(shown) == sorted(row["property"] for row in api["image"]) and shown
    figures = card.locator(".panel.saturation .card[data-figure]").evaluate_all("cs => cs.map(c => c.dataset.figure)")
    assert figures == ["inFlight", "queue", "cpu", "rss", "gpu"]
    if api["saturation"]["gpuUtilizationPercent"] is None:  # this machine has no GPU
        assert card.locator(".card[data-figure=gpu] .value").inner_text() == "no GPU"
    with page.expect_response(lambda r: "/api/deployments/demo/signals?range=1h" in r.url):
        card.locator("button[data-range='1h']").click()
    card.locator(".signals[data-range='1h'] .panel.stages").wait_for()
    ARTIFACTS.mkdir(exist_ok=True)
    card.screenshot(path=str(ARTIFACTS / "dashboard-signals.png"))
    card.locator("[data-tab=versions]").click()
    assert "second model version will appear here" in card.locator(".versions .single").inner_text()
    assert card.locator("table.version-list tr[data-version]").count() == 1
    assert problems == []


def _yolo_response(
    rng: np.random.Generator, version: str, params: tuple[float, float, int], slow: bool = False
) -> DetectionSummary:
    """One image's response as a YOLO app answers it: four detections above the request's conf, its stage
    times, image properties, parameters and model version."""
    confidences = tuple(float(c) for c in np.clip(rng.beta(8, 2, 4), params[0], 1.0))
    areas = tuple(float(a) for a in np.clip(rng.lognormal(np.log(0.02), 1.0, 4), 1e-6, 1.0))
    stages = {"decode": 0.6, "queue": 0.2, "preprocess": 0.5, "inference": float(rng.normal(45 if slow else 30, 2))}
    image = {"brightness": float(rng.normal(115, 8)), "contrast": float(rng.normal(40, 4)),
             "sharpness": float(rng.lognormal(6, 0.3)), "aspect": 4 / 3, "megapixels": 0.3}  # fmt: skip
    names = ("person", "car", "person", MARKUP_CLASS)
    return DetectionSummary(
        1, 4, confidences, areas, (0, 1, 0, 2), names, confidences, ({**stages, "postprocess": 0.7},), (image,),
        params, version,
    )  # fmt: skip


async def _yolo_history(db: Path) -> None:
    """'canary': 160 requests of VERSION_A at conf 0.25 imgsz 640 and 160 of VERSION_B at conf 0.5 imgsz 320 ten
    minutes ago, with saturation samples; 'delta': a fortnight whose clients moved from conf 0.25 imgsz 640 to
    conf 0.5 imgsz 320 on day 7; 'fresh': registered, never used."""
    rng = np.random.default_rng(4)
    clock = FakeClock(time.time() - 600)
    store = Store(db, clock=clock)
    try:
        recorder = Recorder(clock=clock)
        writer = StoreWriter(store, recorder, "w")
        for name in ("canary", "fresh"):
            await store.register_deployment(name)
        for i in range(320):
            version, params = (VERSION_A, (0.25, 0.7, 640)) if i % 2 else (VERSION_B, (0.5, 0.7, 320))
            response = _yolo_response(rng, version, params, slow=version == VERSION_B)
            recorder.record_request("canary", "POST", "/predict", 200, 40_000, f"c{i}", response)
        assert await writer.flush()
        for in_flight in (1, 3, 2):  # the live minute has traffic now: its saturation samples are kept
            sample = {"in_flight": in_flight, "queue": in_flight - 1, "cpu_percent": 40.0, "rss_bytes": 900 * 2**20}
            recorder.record_saturation("canary", sample)
        assert await writer.flush()
    finally:
        await store.close()

    def delta(recorder: Recorder, day: int, index: int) -> None:
        params = (0.25, 0.7, 640) if day < 7 else (0.5, 0.7, 320)
        response = _yolo_response(rng, VERSION_A, params)
        recorder.record_request("delta", "POST", "/predict", 200, 40_000, f"d{day}-{index}", response)

    await record_busy_hours(db, FakeClock(time.time() - 14 * 86400), ("delta",), delta)


@pytest.fixture(scope="module")
def yolo_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("yolo") / "yolo.db"
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _yolo_history(db)).result()
    server = Served(db)
    server.start()
    try:
        yield server.base
    finally:
        server.stop()


@pytest.fixture
def yolo_page(browser, yolo_served: str):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    page = context.new_page()
    page.problems = _console_problems(page)
    page.dialogs = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{yolo_served}/dashboard/")
    page.wait_for_selector(".deployment[data-id=canary] .chart canvas", timeout=20_000)
    yield page
    context.close()


def test_versions_tab_compares_two_versions_side_by_side(yolo_page, yolo_served: str) -> None:  # type: ignore[no-untyped-def]
    """Two versions get a selector each and their figures side by side as /compare gives them, with the drift
    verdicts of b against a: the imgsz change makes confidence and box size "not comparable"."""
    page = yolo_page
    card = page.locator(".deployment[data-id=canary]")
    with page.expect_response(lambda r: "/api/deployments/canary/compare?" in r.url) as answered:
        card.locator("[data-tab=versions]").click()
    compared = answered.value.json()
    listed = requests.get(f"{yolo_served}/api/deployments/canary/signals?range=24h", timeout=10).json()["versions"]
    rows = card.locator("table.version-list tr[data-version]")
    assert rows.evaluate_all("rows => rows.map(r => r.dataset.version)") == [v["version"] for v in listed]
    assert {compared["a"]["version"], compared["b"]["version"]} == {VERSION_A, VERSION_B}
    assert card.locator("select[data-side=a]").input_value() == compared["a"]["version"]
    assert card.locator("select[data-side=b]").input_value() == compared["b"]["version"]
    card.locator("table.compare-signals").wait_for()
    for side in ("a", "b"):
        requests_shown = card.locator(f"table.compare-summary tr[data-figure=requests] td.{side}").inner_text()
        assert _number(requests_shown) == compared[side]["summary"]["requests"] == 160
        p50 = {s["stage"]: s["p50Ms"] for s in compared[side]["stages"]}
        assert card.locator(f"table.compare-stages tr[data-stage=inference] td.{side}").inner_text() == _fmt_ms(
            p50["inference"]
        )
    verdicts = dict(
        card.locator("table.compare-signals tr[data-signal]").evaluate_all(
            "rows => rows.map(r => [r.dataset.signal, r.querySelector('.verdict').textContent])"
        )
    )
    expected = {s["signal"]: "not comparable" if not s["comparable"] else "drift" if s["drifted"] else "no drift"
                for s in compared["drift"]["signals"]}  # fmt: skip
    assert verdicts == expected and verdicts["confidence"] == "not comparable"
    assert compared["drift"]["params"]["reason"] in card.locator(".compare-drift .params-change").inner_text()
    # Picking b's version for a swaps the two, and asks /compare for the swapped pair.
    swapped = urlencode({"a": compared["b"]["version"], "b": compared["a"]["version"]})
    with page.expect_response(lambda r: "/compare?" in r.url and swapped in r.url):
        card.locator("select[data-side=a]").select_option(compared["b"]["version"])
    assert card.locator("select[data-side=b]").input_value() == compared["a"]["version"]
    card.locator("table.compare-signals").wait_for()
    ARTIFACTS.mkdir(exist_ok=True)
    card.screenshot(path=str(ARTIFACTS / "dashboard-versions.png"))
    assert page.problems == []


def test_markup_in_class_and_version_names_shows_as_text(yolo_page) -> None:  # type: ignore[no-untyped-def]
    """A class name and a model version holding HTML show as that text in the new tabs, and run nothing."""
    page = yolo_page
    card = page.locator(".deployment[data-id=canary]")
    card.locator("[data-tab=signals]").click()
    card.locator(f'table.classes tr[data-class="{MARKUP_CLASS}"]').wait_for()
    assert card.locator("table.classes td.class-name").all_inner_texts().count(MARKUP_CLASS) == 1
    card.locator("[data-tab=versions]").click()
    card.locator("table.compare-classes").wait_for()
    assert VERSION_B in card.locator("table.version-list").inner_text()
    assert MARKUP_CLASS in card.locator("table.compare-classes").inner_text()
    assert card.locator(".tab img, .tab b").count() == 0 and page.dialogs == [] and page.problems == []


def test_no_dashboard_module_writes_html() -> None:
    """Every module builds the page from text (dom.js): none parses a string as HTML."""
    writes_html = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|createContextualFragment")
    offenders = [path.name for path in sorted(DASHBOARD_JS.glob("*.js")) if writes_html.search(path.read_text())]
    assert offenders == []


def test_saturation_cards_show_the_sampled_figures(yolo_page, yolo_served: str) -> None:  # type: ignore[no-untyped-def]
    """Sampled in-flight, queue, CPU and memory figures show on the cards and chart; no GPU figures: "no GPU"."""
    page = yolo_page
    card = page.locator(".deployment[data-id=canary]")
    card.locator("[data-tab=signals]").click()
    card.locator(".panel.saturation .chart[data-chart=busy] canvas").wait_for()
    api = requests.get(f"{yolo_served}/api/deployments/canary/signals?range=24h", timeout=10).json()["saturation"]
    assert api["inFlightMax"] == 3 and api["gpuUtilizationPercent"] is None
    value = lambda figure: card.locator(f".card[data-figure={figure}] .value").inner_text()  # noqa: E731
    assert value("inFlight") == "2 mean · 3 max"
    assert value("cpu") == "40%" and value("rss") == "900 MiB" and value("gpu") == "no GPU"
    assert page.problems == []


def test_quality_tab_shows_a_parameter_change_and_image_drift(yolo_page, yolo_served: str) -> None:  # type: ignore[no-untyped-def]
    """When clients changed conf and imgsz, the Quality tab says so above the tests, with when; the tests the
    change spoils say "not comparable"; the image properties have drift tests of their own."""
    page = yolo_page
    card = page.locator(".deployment[data-id=delta]")
    card.locator("[data-tab=quality]").click()
    note = card.locator(".params-change")
    note.wait_for(timeout=30_000)
    drift = requests.get(f"{yolo_served}/api/deployments/delta/drift", timeout=30).json()
    assert drift["params"]["changed"] and "conf from 0.25 to 0.5" in drift["params"]["reason"]
    assert note.inner_text().startswith("Parameter change at ") and drift["params"]["reason"] in note.inner_text()
    boxes = card.locator(".chart[data-signal]")
    shown = dict(boxes.evaluate_all("bs => bs.map(b => [b.dataset.signal, b.querySelector('.verdict').textContent])"))
    assert set(shown) == {s["signal"] for s in drift["signals"]} >= {"confidence", "boxSize", "brightness", "aspect"}
    for signal in drift["signals"]:
        assert (shown[signal["signal"]] == "not comparable") == (not signal["comparable"])
    assert shown["boxSize"] == "not comparable"
    card.locator(".chart[data-signal=brightness] canvas").wait_for()
    assert page.problems == []


def test_a_fresh_deployment_shows_empty_panels(yolo_page) -> None:  # type: ignore[no-untyped-def]
    """A deployment with no traffic (null saturation, empty lists) gets a note in each panel, and no error."""
    page = yolo_page
    card = page.locator(".deployment[data-id=fresh]")
    card.locator("[data-tab=signals]").click()
    card.locator(".signals .panel.image .empty").wait_for()
    for name in ("stages", "classes", "params", "image"):
        assert card.locator(f".panel.{name} .empty").count() == 1, name
    assert card.locator(".card[data-figure=gpu] .value").inner_text() == "no GPU"
    card.locator("[data-tab=versions]").click()
    card.locator(".versions .empty").wait_for()
    assert "No response named its model version" in card.locator(".versions").inner_text()
    assert page.problems == []


# Golden-image checks, sampled frames and the recent-frames holdout series, behind an admin key.

GOLDEN_IMAGE = "<img src=x onerror=alert('golden')>.jpg"
# Whether a blob: URL still loads as an image (img-src allows blob:; a fetch of it would break connect-src).
_BLOB_LOADS = """(url) => new Promise((done) => { const image = new Image();
    image.onload = () => done('alive'); image.onerror = () => done('revoked'); image.src = url; })"""
GOLDEN_DIFFERENCES = [f"{MARKUP_CLASS} moved: IoU 0.52 < 0.80", "extra car 0.44"]


def _png(width: int, height: int) -> bytes:
    """A real PNG of one colour, made with zlib."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    rows = b"".join(b"\x00" + b"\x30\x90\xd0" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


async def _golden_and_holdout(db: Path) -> None:
    """'demo': golden runs over the last ten minutes, the latest failing on one image (whose name and differences
    hold markup), and a holdout run of each set; 'fresh': registered, nothing else."""
    store = Store(db)
    try:
        for name in ("demo", "fresh"):
            await store.register_deployment(name)
        now_ms = int(time.time() * 1000)
        for before_s, passed in ((540, 4), (420, 4), (300, 2), (60, 3)):
            differences = {GOLDEN_IMAGE: GOLDEN_DIFFERENCES} if passed < 4 else {}
            worst = GOLDEN_IMAGE if differences else None
            await store.save_golden(
                "demo", GoldenRun(now_ms - before_s * 1000, 4, passed, worst, differences, None, 912.0)
            )
        for score, details in ((0.81, {}), (0.64, {"set": "recent"})):
            result = {"map50": score + 0.05, "map50_95": score, "images": 50, "details": details}
            await store.save_holdout("demo", "recent" if details else "holdout", "d1", "model:x.pt", result)
    finally:
        await store.close()


def _keep_frames(directory: Path) -> list[bytes]:
    """Three frames a real sampler kept for 'demo' (one with a class name holding markup); their images."""
    images = [EXAMPLE.read_bytes(), _png(48, 32), _png(20, 30)]
    sampler = FrameSampler(directory, "demo", SampleRules(random_share=1.0))  # kept: random, no_detection, low_conf.
    sampler.start()
    detections: list[list[dict[str, object]]] = [
        [{"class": 0, "name": "circle", "confidence": 0.9, "box": {"x1": 1, "y1": 1, "x2": 9, "y2": 9}}],
        [],
        [{"class": 3, "name": MARKUP_CLASS, "confidence": 0.3, "box": {"x1": 1, "y1": 1, "x2": 9, "y2": 9}}],
    ]
    for image, found in zip(images, detections, strict=True):
        assert sampler.offer(image, found) is not None
    sampler.close()
    assert sampler.stats.kept == 3, sampler.stats
    return images


def test_golden_samples_and_recent_holdout_tabs(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Behind an admin key: the Golden tab shows the latest run's figures and differences as the API gives them; the
    Samples tab shows thumbnails that really loaded (from blob: URLs, revoked when the tab is left) with their rules
    and classes, and filters by rule; the Quality tab shows both holdout series; markup in an image name, a difference
    or a class shows as text; a deployment with neither says how to start; the CSP refuses nothing."""
    db = tmp_path / "golden.db"
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _golden_and_holdout(db)).result()
    _keep_frames(tmp_path / "samples")
    with _admin_served(db, tmp_path / "samples", keys=(ADMIN_KEY,)) as base:
        auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
        context = browser.new_context(viewport={"width": 1280, "height": 1400})
        context.add_init_script(f"sessionStorage.setItem('yolowatch-api-key', {json.dumps(ADMIN_KEY)})")
        page = context.new_page()
        problems = _console_problems(page)
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(f"{base}/dashboard/")
        card = page.locator(".deployment[data-id=demo]")
        with page.expect_response(lambda r: "/api/deployments/demo/golden?range=24h" in r.url) as answered:
            card.locator("[data-tab=golden]").click()
        golden = answered.value.json()
        latest = golden["latest"]
        assert (latest["passed"], latest["images"], latest["worst"]) == (3, 4, GOLDEN_IMAGE)
        card.locator(".golden-charts canvas").first.wait_for()
        headline = card.locator(".golden-headline").inner_text()
        assert "3/4 passed" in headline and "75.0%" in headline and GOLDEN_IMAGE in headline
        assert card.locator(".golden-headline .pill.failing").count() == 1
        item = card.locator(".golden-differences > li")
        assert item.get_attribute("data-image") == GOLDEN_IMAGE
        assert item.locator("li.difference").all_inner_texts() == latest["differences"][GOLDEN_IMAGE]
        assert card.locator(".golden-charts .chart canvas").count() == 2
        assert card.locator("table.golden-failing tr[data-time]").count() == 2  # the run at 2/4 and the latest
        assert card.locator(".tab img").count() == 0
        ARTIFACTS.mkdir(exist_ok=True)
        card.screenshot(path=str(ARTIFACTS / "dashboard-golden.png"))

        with page.expect_response(lambda r: "/api/deployments/demo/samples?" in r.url) as answered:
            card.locator("[data-tab=samples]").click()
        listed = answered.value.json()
        assert listed["enabled"] is True and listed["summary"]["frames"] == 3
        thumbnails = card.locator(".sample-grid figure.sample img")
        page.wait_for_function(
            "() => { const images = [...document.querySelectorAll('.deployment[data-id=demo] .sample-grid img')];"
            " return images.length === 3 && images.every((i) => i.complete && i.naturalWidth > 0); }"
        )
        shown = thumbnails.evaluate_all("images => images.map((i) => [i.src, i.naturalWidth, i.naturalHeight])")
        assert all(src.startswith("blob:") for src, *_ in shown)
        assert [size for _, *size in shown] == [[20, 30], [48, 32], [320, 320]]  # newest first; the example is 320 px
        figures = card.locator("figure.sample")
        assert figures.evaluate_all("fs => fs.map((f) => f.dataset.id)") == [s["id"] for s in listed["samples"]]
        assert figures.first.locator(".classes").inner_text() == MARKUP_CLASS
        assert figures.nth(1).locator(".classes").inner_text() == "no detections"
        rules = card.locator(".sample-rules").inner_text()
        assert "random (1)" in rules and "no_detection (1)" in rules and "low_confidence (1)" in rules
        with page.expect_response(lambda r: "/samples?" in r.url and "rule=no_detection" in r.url):
            card.locator(".sample-rules button[data-rule=no_detection]").click()
        card.locator(".samples[data-rule=no_detection] figure.sample[data-rule=no_detection] img").wait_for()
        assert card.locator("figure.sample").count() == 1
        card.locator(".sample-rules button[data-rule=drift]").click()
        card.locator(".samples[data-rule=drift] .empty").wait_for()
        assert requests.get(f"{base}{listed['samples'][0]['image']}", timeout=10).status_code == 401
        assert requests.get(f"{base}{listed['samples'][0]['image']}", headers=auth, timeout=10).status_code == 200
        card.locator(".sample-rules button[data-rule='']").click()
        page.wait_for_function(
            "() => [...document.querySelectorAll('.deployment[data-id=demo] .sample-grid img')]"
            ".filter((i) => i.naturalWidth > 0).length === 3"
        )
        card.screenshot(path=str(ARTIFACTS / "dashboard-samples.png"))
        blob = card.locator(".sample-grid img").first.get_attribute("src")
        assert page.evaluate(_BLOB_LOADS, blob) == "alive"
        card.locator("[data-tab=quality]").click()  # leaving the tab revokes its blob: URLs
        assert page.evaluate(_BLOB_LOADS, blob) == "revoked"

        card.locator(".chart.recent canvas").wait_for(timeout=30_000)
        assert "mAP50-95 0.640" in card.locator(".chart.recent .stats").inner_text()
        assert "mAP50-95 0.810" in card.locator(".chart.holdout .stats").inner_text()

        fresh = page.locator(".deployment[data-id=fresh]")
        fresh.locator("[data-tab=golden]").click()
        assert "yolowatch golden record --endpoint" in fresh.locator(".how-to pre.command").inner_text()
        fresh.locator("[data-tab=samples]").click()
        fresh.locator(".how-to").wait_for()
        assert "--sample-dir DIR" in fresh.locator(".how-to").inner_text()
        assert "users' images" in fresh.locator(".how-to").inner_text()
        # Expected: the drift tests' 409 without traffic (not enough data), and the revoked URL this test loaded.
        problems = [p for p in problems if "status of 409" not in p and "ERR_FILE_NOT_FOUND" not in p]
        assert dialogs == [] and problems == [], (dialogs, problems)
        context.close()


SILENCE_COMMENT = "<img src=x onerror=alert('silence')> driver upgrade"
ACK_COMMENT = "<b>looking</b> at the GPU"


async def _firing_alert(db: Path) -> None:
    """'demo' with HighErrorRate firing since ten minutes ago, its notification sent."""
    store = Store(db)
    try:
        await store.register_deployment("demo")
        since = int(time.time()) - 600
        state = AlertState("HighErrorRate", "demo", "firing", since, since, 0.2)
        note = Notification("HighErrorRate", "demo", "firing", since, None, 0.2, "critical", "read the ERROR logs")
        await store.save_alerts([state], [note])
    finally:
        await store.close()


def test_silence_and_acknowledge_a_firing_alert_from_the_page(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Behind the admin key: the page acknowledges a firing alert through its own small form (who, a comment) and
    shows it; the New silence form creates a silence that the alert then shows with its comment and end, and that
    the Silences list shows with an Expire button that ends it; markup in the comments shows as text; no dialog, no
    console error, no CSP refusal."""
    db = tmp_path / "silences.db"
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _firing_alert(db)).result()
    with _admin_served(db, keys=(ADMIN_KEY,)) as base:
        auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
        alert = lambda: requests.get(f"{base}/api/alerts", headers=auth, timeout=10).json()["rules"][0]  # noqa: E731
        context = browser.new_context(viewport={"width": 1280, "height": 1100})
        context.add_init_script(f"sessionStorage.setItem('yolowatch-api-key', {json.dumps(ADMIN_KEY)})")
        page = context.new_page()
        problems = _console_problems(page)
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(f"{base}/dashboard/")
        item = page.locator("#notifications .notification.firing[data-rule=HighErrorRate][data-deployment=demo]")
        item.locator("button.ack").click()
        form = item.locator("form.ack-form")
        form.locator("input[name=by]").fill("ana")
        form.locator("input[name=comment]").fill(ACK_COMMENT)
        with page.expect_response(lambda r: r.url.endswith("/api/alerts/ack") and r.status == 200):
            form.locator("button[type=submit]").click()
        note = page.locator("#notifications .ack-note")
        note.wait_for()
        assert note.inner_text().startswith("acknowledged by ana at ") and note.inner_text().endswith(ACK_COMMENT)
        assert alert()["acknowledged"]["by"] == "ana" and alert()["acknowledged"]["comment"] == ACK_COMMENT

        page.locator("#new-silence").click()
        silence_form = page.locator("#silence-form")
        silence_form.locator("input[name=alertname]").fill("HighErrorRate")
        silence_form.locator("input[name=deployment]").fill("demo")
        silence_form.locator("input[name=duration]").fill("3h")
        silence_form.locator("input[name=createdBy]").fill("ops")
        silence_form.locator("input[name=comment]").fill(SILENCE_COMMENT)
        with page.expect_response(lambda r: r.url.endswith("/api/silences") and r.status == 201) as created:
            silence_form.locator("button[type=submit]").click()
        silence = created.value.json()
        assert silence_form.is_hidden()
        listed = page.locator(f"#silences .silence.active[data-id='{silence['id']}']")
        listed.wait_for()
        assert listed.locator(".matchers").inner_text() == 'alertname="HighErrorRate", deployment="demo"'
        assert listed.locator(".comment").inner_text() == SILENCE_COMMENT
        held = item.locator(f".silenced-note[data-silence='{silence['id']}']")
        held.wait_for()
        assert held.inner_text().endswith(f"by ops: {SILENCE_COMMENT}") and " until " in held.inner_text()
        assert alert()["silencedBy"] == [silence["id"]]
        ARTIFACTS.mkdir(exist_ok=True)
        page.locator("section.notifications").screenshot(path=str(ARTIFACTS / "dashboard-silences.png"))

        with page.expect_response(lambda r: r.request.method == "DELETE" and r.status == 200):
            listed.locator("button.expire").click()
        page.locator(f"#silences .silence.expired[data-id='{silence['id']}']").wait_for()
        item.locator(".silenced-note").wait_for(state="detached")
        assert alert()["silencedBy"] == []
        card = page.locator(".deployment[data-id=demo]")
        card.locator("[data-tab=alerts]").click()  # the deployment's tab shows the acknowledgement too
        notes = card.locator(".alert-rules tr[data-rule=HighErrorRate] td.notes")
        notes.locator(".ack-note").wait_for()
        assert "acknowledged by ana" in notes.inner_text() and notes.locator(".silenced-note").count() == 0
        assert page.locator("section.notifications img, section.notifications b, .tab img, .tab b").count() == 0
        assert dialogs == [] and problems == [], (dialogs, problems)
        context.close()


TRACE_A = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACE_B = "00f067aa0ba902b700f067aa0ba902b7"
MARKUP_TRACE = "<img src=x onerror=alert('trace')>"  # no API answers one; were one stored, it must show as text
# 'traced', newest first: the trace of each entry (None: in no trace); the fourth is the one 500.
TRACED = [TRACE_A, TRACE_B, MARKUP_TRACE, TRACE_A, None, TRACE_B, TRACE_A]


async def _traced_logs(db: Path) -> None:
    """'traced': seven requests a second apart, in the traces of TRACED (oldest first here)."""
    clock = FakeClock(time.time() - 60)
    store = Store(db, clock=clock)
    recorder = Recorder(clock=clock)
    try:
        await store.register_deployment("traced")
        for i, trace_id in enumerate(reversed(TRACED)):
            # the clients' traces (a parent span): what a log entry keeps without tracing here
            trace = None if trace_id is None else (trace_id, "", f"{i + 1:016x}", False, 0, 0, None)
            status = 500 if i == 3 else 200
            recorder.record_request("traced", "POST", "/predict", status, 20_000, f"req-{i}", trace=trace)
            clock.advance(1)
        assert await StoreWriter(store, recorder, "w1").flush()
    finally:
        await store.close()


def _wait_for_traces(page: playwright_api.Page, expected: list[str | None]) -> None:
    """Until the 'traced' card lists entries of these traces, newest first."""
    page.wait_for_function(
        "(expected) => JSON.stringify([...document.querySelectorAll('.deployment[data-id=traced] .log')]"
        ".map(r => r.dataset.trace || null)) === JSON.stringify(expected)",
        arg=expected,
    )


def test_logs_show_trace_ids_and_filter_to_one_trace(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """An entry in a trace shows its trace id short (monospace, the full id as its title), one in none shows none;
    clicking a trace id lists that trace's entries only, in the Errors/All mode picked, under a chip whose clear
    button lists every trace again; Copy names each line's trace; a trace id holding markup shows as text and runs
    nothing."""
    db = tmp_path / "traced.db"
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _traced_logs(db)).result()
    with _admin_served(db) as base:
        context = browser.new_context(viewport={"width": 1280, "height": 1100})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
        page = context.new_page()
        problems = _console_problems(page)
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(f"{base}/dashboard/")
        card = page.locator(".deployment[data-id=traced]")
        chip = card.locator(".logs-actions .trace-chip")
        _wait_for_traces(page, TRACED)
        shown = card.locator(".log").evaluate_all(
            "rows => rows.map(r => [...r.querySelectorAll('.trace *')].map(b => [b.tagName, b.textContent, b.title]))"
        )
        assert shown == [[] if t is None else [["BUTTON", t[:8], t]] for t in TRACED]
        font = card.locator(".log .trace button").first.evaluate("b => getComputedStyle(b).fontFamily")
        assert "monospace" in font and chip.count() == 0

        with page.expect_response(lambda r: f"&traceId={TRACE_A}" in r.url and "severity" not in r.url):
            card.locator(".log").first.locator(".trace button").click()
        _wait_for_traces(page, [TRACE_A] * 3)
        assert chip.inner_text().startswith(f"trace {TRACE_A[:8]}…") and chip.get_attribute("title") == TRACE_A
        with page.expect_response(lambda r: "&severity=ERROR,WARNING" in r.url and f"&traceId={TRACE_A}" in r.url):
            card.locator(".logs-actions button", has_text="Errors").click()
        _wait_for_traces(page, [TRACE_A])  # the one 500, still under the chip
        assert card.locator(".log").get_attribute("data-severity") == "ERROR" and chip.count() == 1
        ARTIFACTS.mkdir(exist_ok=True)
        card.screenshot(path=str(ARTIFACTS / "dashboard-logs-trace.png"))
        card.locator(".logs-actions button", has_text="Copy").click()
        page.wait_for_function("() => document.querySelector('#status').textContent === 'copied 1 log lines'")
        assert page.evaluate("navigator.clipboard.readText()").endswith(f" [req-3 trace={TRACE_A}]")
        card.locator(".logs-actions button", has_text="All").click()
        _wait_for_traces(page, [TRACE_A] * 3)
        chip.locator("button.clear").click()
        _wait_for_traces(page, TRACED)
        assert chip.count() == 0
        card.locator(".logs-actions button", has_text="Copy").click()
        page.wait_for_function("() => document.querySelector('#status').textContent === 'copied 7 log lines'")
        lines = page.evaluate("navigator.clipboard.readText()").split("\n")
        assert [line[line.index(" [") :] for line in lines] == [
            f" [req-{6 - i}]" if t is None else f" [req-{6 - i} trace={t}]" for i, t in enumerate(TRACED)
        ]

        # The markup trace id: its chip and title show it as text, and the API refuses it as a filter.
        with page.expect_response(lambda r: "&traceId=" in r.url) as refused:
            card.locator(".log").nth(2).locator(".trace button").click()
        assert refused.value.status == 400
        assert parse_qs(urlsplit(refused.value.url).query)["traceId"] == [MARKUP_TRACE]
        card.locator(".log-list .error").wait_for()
        assert chip.inner_text().startswith("trace <img src…") and chip.get_attribute("title") == MARKUP_TRACE
        chip.locator("button.clear").click()
        _wait_for_traces(page, TRACED)
        assert page.locator("main img, main b").count() == 0 and dialogs == []
        assert [p for p in problems if "status of 400" not in p] == [], problems
        context.close()
