"""yolowatch: monitoring for self-hosted YOLO detection endpoints."""

__version__ = "0.1.0"

__all__ = ["__version__"]
