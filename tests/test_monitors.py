"""Monitor states (active, paused, archived) and the live snapshot window, through the admin API of a real app."""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from helpers import FakeClock, wait_until
from yolowatch import WatchMiddleware
from yolowatch.admin import admin_router
from yolowatch.monitor import Monitor


async def predict(request: Request) -> Response:
    return JSONResponse({"images": []})


def _app(path: str, clock: Callable[[], float] = time.time) -> tuple[Monitor, Starlette]:
    monitor = Monitor(path, "prod", clock=clock, flush_interval_s=0.2)
    app = Starlette(
        routes=[
            Route("/predict", predict, methods=["POST"]),
            Mount("/", admin_router(monitor.store, monitors=[monitor])),
        ]
    )
    return monitor, app


def test_a_paused_monitor_records_nothing_and_an_archived_one_is_hidden(database: Callable[[str], str]) -> None:
    """A paused monitor still serves but records nothing, a resumed one records again, an archived one is hidden
    from the lists (not gone), bad changes are refused, and the choice survives a restart."""
    monitor, app = _app(database("m.db"))
    with TestClient(WatchMiddleware(app, monitor=monitor)) as client:

        def requests() -> int:
            return client.get("/api/deployments/prod/metrics?range=1h").json()["summary"]["requests"]

        for _ in range(3):
            client.post("/predict")
        wait_until(lambda: requests() == 3, "three recorded requests")
        paused = client.patch("/api/deployments/prod", json={"state": "paused"})
        assert paused.status_code == 200 and paused.json()["state"] == "paused"
        wait_until(lambda: monitor.recorder.paused == {"prod"}, "the writer to see the pause")
        for _ in range(5):
            assert client.post("/predict").status_code == 200  # still served, only not recorded
        wait_until(lambda: monitor.recorder.stats.paused_skipped == 5, "the paused requests to be dropped")
        assert requests() == 3
        client.patch("/api/deployments/prod", json={"state": "active"})
        wait_until(lambda: not monitor.recorder.paused, "the writer to see the resume")
        client.post("/predict")
        wait_until(lambda: requests() == 4, "recording to resume")

        archived = client.patch("/api/deployments/prod", json={"state": "archived", "snapshotWindow": "5m"})
        assert archived.json()["snapshot"]["window"] == "5m" and archived.json()["snapshot"]["requests"] == 4
        assert client.get("/api/deployments").json()["deployments"] == []
        assert client.get("/api/monitoring").json()["deployments"] == []
        shown = client.get("/api/deployments?archived=true").json()["deployments"]
        assert [(d["id"], d["state"], d["snapshotWindow"]) for d in shown] == [("prod", "archived", "5m")]
        assert client.get("/api/deployments/prod").status_code == 200  # hidden from lists, not gone

        for body, says in (
            ({"state": "sleeping"}, "state must be one of active, paused, archived"),
            ({"snapshotWindow": "2h"}, "snapshotWindow must be one of 5m, 15m, 1h, 6h, 1d"),
            ({}, "either or both"),
            ({"state": "paused", "colour": "red"}, "either or both"),
        ):
            refused = client.patch("/api/deployments/prod", json=body)
            assert refused.status_code == 400 and says in refused.json()["error"], refused.json()
        assert client.patch("/api/deployments/nope", json={"state": "paused"}).status_code == 404

    # A restart keeps what the user chose: the state and window live in the file, not in the process.
    monitor, app = _app(database("m.db"))
    with TestClient(WatchMiddleware(app, monitor=monitor)) as client:
        row = client.get("/api/deployments/prod").json()
        assert (row["state"], row["snapshotWindow"]) == ("archived", "5m")


def test_the_snapshot_window_sets_the_health_state(database: Callable[[str], str]) -> None:
    """The health state is judged on the snapshot window: errors ten minutes ago are out of a 5m snapshot
    and inside a 1d one."""
    clock = FakeClock()
    monitor, app = _app(database("s.db"), clock)
    with TestClient(WatchMiddleware(app, monitor=monitor)) as client:

        def snapshot() -> dict:
            return client.get("/api/deployments/prod").json()["snapshot"]

        for _ in range(10):
            client.post("/nothing-here")  # 404s: client errors
        wait_until(lambda: snapshot()["requests"] == 10, "the failed requests")
        assert snapshot()["errorRate"] == 1.0 and snapshot()["healthState"] == "critical"
        clock.advance(600)
        client.patch("/api/deployments/prod", json={"snapshotWindow": "5m"})
        assert snapshot()["requests"] == 0 and snapshot()["healthState"] == "healthy"
        assert client.get("/api/monitoring").json()["deployments"][0]["status"] == "healthy"
        client.patch("/api/deployments/prod", json={"snapshotWindow": "1d"})
        assert snapshot()["requests"] == 10 and snapshot()["healthState"] == "critical"
        assert client.get("/api/monitoring").json()["deployments"][0]["status"] == "critical"
