"""The README's "admin API beside your own routes" example, as written there, on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from helpers import wait_until
from yolowatch import WatchMiddleware
from yolowatch.admin import admin_router, own_health_endpoint
from yolowatch.monitor import Monitor

BODY = {"images": [{"shape": [10, 20], "results": [{"class": 0, "name": "a", "confidence": 0.5,
                                                     "box": {"x1": 0, "y1": 0, "x2": 10, "y2": 10}}]}]}  # fmt: skip


async def predict(request: Request) -> Response:
    return JSONResponse(BODY)


async def probe() -> int:
    return 200


def test_admin_router_and_health_mount_in_your_own_app(tmp_path: Path) -> None:
    """The admin router and /health mounted beside your own predict route: the key guards the API, the prediction
    is recorded with its detections, and /health and the admin calls are not counted as traffic."""
    monitor = Monitor(tmp_path / "y.db", "prod", model="best.pt", probe=probe)
    app = Starlette(
        routes=[
            Route("/predict", predict, methods=["POST"]),
            Route("/health", own_health_endpoint(monitor)),
            Mount("/", admin_router(monitor.store, monitors=[monitor], keys=["admin-secret"])),
        ]
    )
    with TestClient(WatchMiddleware(app, monitor=monitor)) as client:
        assert client.post("/predict").status_code == 200
        key = {"Authorization": "Bearer admin-secret"}
        wait_until(  # the monitor's writer stores it within a second
            lambda: client.get("/api/monitoring", headers=key).json()["totalRequests"] >= 1,
            "the prediction to be written",
            timeout_s=10,
        )
        assert client.get("/health").json()["healthy"] is True
        assert client.get("/api/monitoring").status_code == 401
        overview = client.get("/api/monitoring", headers=key).json()
        assert overview["totalRequests"] == 1  # /health and the admin calls are not traffic
        summary = client.get("/api/deployments/prod/metrics?range=1h", headers=key).json()["summary"]
        assert summary["detectionsPerRequest"] == 1.0 and summary["meanConfidence"] == 0.5
