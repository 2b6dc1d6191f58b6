"""yolowatch: monitoring for self-hosted YOLO object-detection endpoints."""

__version__ = "0.1.0"

from yolowatch.middleware import WatchMiddleware
from yolowatch.store import Store

__all__ = ["Store", "WatchMiddleware", "__version__"]
