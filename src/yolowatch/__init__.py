"""yolowatch: monitoring for self-hosted YOLO object-detection endpoints."""

__version__ = "0.1.0"

from yolowatch.admin import admin_router
from yolowatch.asgi.middleware import WatchMiddleware
from yolowatch.store import Store

__all__ = ["Store", "WatchMiddleware", "__version__", "admin_router"]
