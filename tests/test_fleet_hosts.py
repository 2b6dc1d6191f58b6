"""A fleet across real hosts: network namespaces A and B each run an upstream and a `yolowatch sidecar`, C runs
PostgreSQL, and traffic comes from the root namespace. The admin API of either host shows the union, exact to
the request and to the HDR histogram; an alert crossing on both hosts notifies once; PostgreSQL stopped for
30 s under traffic fails no request and loses nothing; SIGKILL of A's sidecar loses about a second of A's
data and nothing of B's.

The sidecars' clocks run 60 times faster than real time from one anchor (YOLOWATCH_TIME_SCALE), so the
five-minute error-rate rule goes pending, fires and resolves in seconds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import WebhookReceiver, status_of, stop_process, upstream_command, wait_until
from netns import Hosts
from postgres import PASSWORD, Cluster, admin, database_url
from yolowatch.records import new_latency_histogram
from yolowatch.store import Store

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("ip") is None, reason="network namespaces need root and iproute2's ip"
    ),
]

SCALE = 60.0
KEY = "fleet-admin-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
RATE_PER_HOST = 40  # requests a second, about
SIDECAR_PORT, ADMIN_PORT, UPSTREAM_PORT = 8080, 8081, 9000


class Traffic:
    """One client thread per host, each sending GETs one after the other (about RATE_PER_HOST a second); every
    `error_every`-th goes to a path the upstream answers 404 (0: none). Counts answers per host; a request that
    gets no answer is kept in `failures`."""

    def __init__(self, urls: dict[str, str]) -> None:
        self.urls = urls
        self.error_every = 0
        self.answered: Counter[str] = Counter()
        self.failures: dict[str, list[str]] = {host: [] for host in urls}
        self.unexpected: list[tuple[str, int]] = []
        self._running = threading.Event()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send, args=(host,), daemon=True) for host in urls]

    def _send(self, host: str) -> None:
        with httpx.Client(base_url=self.urls[host], timeout=10) as client:
            i = 0
            while not self._stop.is_set():
                if not self._running.wait(0.05):
                    continue
                i += 1
                path = "/nowhere" if self.error_every and i % self.error_every == 0 else "/echo/x"
                try:
                    status = client.get(path).status_code
                except httpx.HTTPError as exc:
                    self.failures[host].append(f"{type(exc).__name__}: {exc}")
                else:
                    self.answered[host] += 1
                    if status != (404 if path == "/nowhere" else 200):
                        self.unexpected.append((path, status))
                time.sleep(1 / RATE_PER_HOST)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()
        self._running.set()

    def pause(self) -> None:
        """Stop sending; returns once no request is in flight (each thread finishes the one it is on)."""
        self._running.clear()
        time.sleep(0.5)

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)


def _db_call(url: str, call: Callable[[Store], Any]) -> Any:
    """Run `await call(store)` on a fresh store of `url`, from this (sync) test."""

    async def run() -> Any:
        async with Store(url) as store:
            return await call(store)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


@contextlib.contextmanager
def _process(command: list[str], env: dict[str, str], output: Path) -> Iterator[subprocess.Popen[bytes]]:
    with output.open("wb") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=sink)
        try:
            yield process
        finally:
            if process.poll() is None:
                stop_process(process)


def _summary(admin_url: str) -> dict[str, Any]:
    response = httpx.get(f"{admin_url}/api/deployments/edge/metrics", params={"range": "24h"}, headers=AUTH, timeout=10)
    response.raise_for_status()
    return dict(response.json()["summary"])


def _requests_shown(admin_url: str) -> int:
    try:
        return int(_summary(admin_url)["requests"])
    except (httpx.HTTPError, KeyError):
        return -1


def test_two_hosts_one_database(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        hosts = stack.enter_context(Hosts(["a", "b", "c"]))
        server = stack.enter_context(Cluster(host=hosts.address["c"], netns=hosts.namespaces["c"]))
        admin(server.url, "CREATE DATABASE fleet")
        url = database_url(server.url, "fleet")
        receiver = stack.enter_context(WebhookReceiver(host=hosts.gateway))
        env = {
            **os.environ,
            "YOLOWATCH_API_KEY": KEY,
            "YOLOWATCH_DB": url,  # from the environment, as a Kubernetes Secret gives it
            "YOLOWATCH_TIME_SCALE": str(SCALE),
            "YOLOWATCH_TIME_ANCHOR": str(time.time()),
            "YOLOWATCH_ALERT_WEBHOOK": receiver.url,
            "YOLOWATCH_HEALTH_INTERVAL_S": "0.5",
            "YOLOWATCH_HEALTH_RETRY_S": "0.5",
        }
        sidecars = {}
        for name, region in (("a", "eu-west-1"), ("b", "us-east-1")):
            upstream = upstream_command(UPSTREAM_PORT)
            stack.enter_context(_process(hosts.command(name, upstream), env, tmp_path / f"upstream-{name}.log"))
            sidecar = [sys.executable, "-m", "yolowatch", "sidecar", "--upstream", f"http://127.0.0.1:{UPSTREAM_PORT}",
                       "--host", hosts.address[name], "--port", str(SIDECAR_PORT), "--admin-port", str(ADMIN_PORT),
                       "--deployment", "edge", "--instance", f"host-{name}", "--region", region]  # fmt: skip
            sidecars[name] = stack.enter_context(_process(hosts.command(name, sidecar), env, tmp_path / f"{name}.log"))
        admins = {name: f"http://{hosts.address[name]}:{ADMIN_PORT}" for name in ("a", "b")}
        for name, admin_url in admins.items():
            wait_until(
                lambda admin_url=admin_url: status_of(f"{admin_url}/health"),
                f"host {name}'s sidecar to be healthy",
                accept=lambda status: status == 200,
                timeout_s=90,
            )
        traffic = Traffic({name: f"http://{hosts.address[name]}:{SIDECAR_PORT}" for name in ("a", "b")})
        stack.callback(traffic.stop)

        # 1. Errors on both hosts for ten minutes of their clocks, then none: the rule fires and resolves once.
        traffic.error_every = 4
        traffic.start()
        wait_until(lambda: _sent(receiver, "firing"), "HighErrorRate to fire", timeout_s=60, every_s=0.2)
        traffic.error_every = 0
        wait_until(lambda: _sent(receiver, "resolved"), "HighErrorRate to resolve", timeout_s=60, every_s=0.2)
        time.sleep(3)  # three more minutes of their clocks: a second notification would have come by now
        sent = Counter((a["labels"]["alertname"], a["status"]) for b in receiver.bodies for a in b["alerts"])
        assert sent[("HighErrorRate", "firing")] == 1 and sent[("HighErrorRate", "resolved")] == 1, sent
        assert max(sent.values()) == 1, f"a notification went out twice: {sent}"

        # 2. Either host's admin API shows the union: counts exact, percentiles those of one histogram of all.
        traffic.pause()
        total = sum(traffic.answered.values())
        for admin_url in admins.values():
            wait_until(lambda admin_url=admin_url: _requests_shown(admin_url), "every request to be stored",
                       accept=lambda shown: shown == total, timeout_s=30)  # fmt: skip
        latencies = _db_call(url, lambda store: store.db.fetch_all("SELECT latency_us FROM logs"))
        assert len(latencies) == total
        union = new_latency_histogram()
        for row in latencies:
            union.record_value(row["latency_us"])
        for admin_url in admins.values():
            summary = _summary(admin_url)
            for q in (50, 95, 99):
                assert summary[f"p{q}Ms"] == union.get_value_at_percentile(q) / 1000, (admin_url, q)
        by_host = _db_call(url, lambda store: store.host_windows("edge", 0, 2**40))
        assert {host: bucket.requests for host, bucket in by_host.items()} == {
            "host-a": traffic.answered["a"],
            "host-b": traffic.answered["b"],
        }

        # 3. PostgreSQL stopped for 30 s under traffic: no request fails, and nothing is lost.
        traffic.resume()
        time.sleep(2)
        server.stop()
        time.sleep(30)
        server.start()
        time.sleep(2)
        traffic.pause()
        assert not any(traffic.failures.values()) and not traffic.unexpected
        total = sum(traffic.answered.values())
        for admin_url in admins.values():
            wait_until(lambda admin_url=admin_url: _requests_shown(admin_url), "the outage's requests to be stored",
                       accept=lambda shown: shown == total, timeout_s=60)  # fmt: skip

        # 4. SIGKILL of host A's sidecar under traffic: about a second of A's data is lost, nothing of B's.
        traffic.resume()
        time.sleep(3)
        sidecars["a"].send_signal(signal.SIGKILL)
        sidecars["a"].wait()
        answered_a = traffic.answered["a"]
        time.sleep(3)
        traffic.pause()
        answered_b = traffic.answered["b"]
        wait_until(
            lambda: _db_call(url, lambda store: store.host_windows("edge", 0, 2**40))["host-b"].requests,
            "host B's requests to be stored",
            accept=lambda stored: stored == answered_b,
            timeout_s=30,
        )
        stored_a = _db_call(url, lambda store: store.host_windows("edge", 0, 2**40))["host-a"].requests
        lost_s = (answered_a - stored_a) / RATE_PER_HOST
        assert answered_a - stored_a >= 0 and lost_s <= 1.5, f"A lost {answered_a - stored_a} requests ({lost_s:.2f} s)"
        print(f"fleet: SIGKILL of host A lost {answered_a - stored_a} of its requests ({lost_s:.2f} s of traffic)")
        assert not traffic.failures["b"]
        processes = _db_call(url, lambda store: store.fleet_processes())
        assert sorted((p["host"], p["kind"], p["region"]) for p in processes) == [
            ("host-a", "sidecar", "eu-west-1"),
            ("host-b", "sidecar", "us-east-1"),
        ]
    for name in ("a", "b"):
        assert PASSWORD not in (tmp_path / f"{name}.log").read_text()


def _sent(receiver: WebhookReceiver, status: str) -> bool:
    return any(
        a["labels"]["alertname"] == "HighErrorRate" and a["status"] == status
        for b in receiver.bodies
        for a in b["alerts"]
    )
