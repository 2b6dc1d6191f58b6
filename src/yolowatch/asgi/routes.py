"""The paths yolowatch serves beside a predict app, in one table, and the dispatcher that routes by them.

    /health                      this process's deployment (its latest probe), no key
    /metrics                     Prometheus exposition
    /api/...                     the admin API (bearer key when one is set)
    /dashboard, /dashboard/...   the dashboard's static files
    everything else              the predict app (or the proxied upstream)

None of the first four counts as the deployment's traffic (WatchMiddleware skips them).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

HEALTH_PATH = "/health"
METRICS_PATH = "/metrics"
ADMIN_PREFIX = "/api/"
DASHBOARD_PREFIX = "/dashboard"

DEFAULT_EXCLUDED_PATHS = (HEALTH_PATH, METRICS_PATH, "/favicon.ico")
DEFAULT_EXCLUDED_PREFIXES = (ADMIN_PREFIX, DASHBOARD_PREFIX)


def is_admin_path(path: str) -> bool:
    return path.startswith(ADMIN_PREFIX) or path == METRICS_PATH or path.startswith(DASHBOARD_PREFIX)


class Dispatch:
    """Route by path to the admin side, this process's `/health`, or the served app; lifespan goes to the
    served app."""

    def __init__(self, app: ASGIApp, admin: ASGIApp, health: ASGIApp) -> None:
        self.app = app
        self.admin = admin
        self.health = health

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path == HEALTH_PATH:
                await self.health(scope, receive, send)
                return
            if is_admin_path(path):
                await self.admin(scope, receive, send)
                return
        await self.app(scope, receive, send)
