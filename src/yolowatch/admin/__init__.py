"""The admin side: `admin_router` (the JSON API, `/metrics`, the dashboard) and `own_health_endpoint`."""

from yolowatch.admin.routes import admin_router, own_health_endpoint

__all__ = ["admin_router", "own_health_endpoint"]
