"""The ASGI side: the middleware that records, the sidecar's proxy, keys, headers and the path table."""
