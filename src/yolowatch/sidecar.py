"""`yolowatch sidecar`: the proxy on the traffic port, the admin side on its own port, one process.

    traffic port (8000):  WatchMiddleware → ProxyApp → upstream   (every path, the upstream's own
                          /health and /metrics included, passes through untouched)
    admin port (8001):    /health (this deployment's probe of the upstream), /api/*, /metrics

A separate admin port is how the sidecar's routes never collide with the upstream's: the traffic
port stays a transparent proxy, and Kubernetes probes and Prometheus point at the admin port.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from yolowatch._util import redacted_url
from yolowatch.asgi.capture import FrameCapture
from yolowatch.asgi.middleware import WatchMiddleware
from yolowatch.asgi.proxy import ProxyApp
from yolowatch.asgi.routes import DEFAULT_EXCLUDED_PATHS, Dispatch
from yolowatch.asgi.sampler import Measure, UploadSampler
from yolowatch.compose import ServerStack, admin_app, create_monitor, health_router, server_stack
from yolowatch.config import Settings
from yolowatch.errors import json_error
from yolowatch.health import http_probe, predict_probe
from yolowatch.monitor import Monitor


async def _not_admin(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await json_error(404, "the admin port serves /health, /metrics and /api/...; traffic goes to the proxy port")(
            scope, receive, send
        )


def create_sidecar(settings: Settings, measure: Measure | None = None) -> tuple[ASGIApp, ASGIApp, Monitor]:
    """(traffic app, admin app, monitor) for `settings.upstream`; with `measure` (an upload's bytes to its image
    properties, from the yolo extra), `settings.image_sample` of the uploads are measured."""
    upstream = settings.upstream.rstrip("/")
    if settings.probe_image:
        image = Path(settings.probe_image)
        probe = predict_probe(upstream + settings.probe_path, image.read_bytes(), image.name)
    else:
        probe = http_probe(upstream + settings.health_path)
    monitor = create_monitor(
        settings,
        probe=probe,
        endpoint=redacted_url(upstream),
        kind="sidecar",
        golden_url=upstream + settings.probe_path,  # golden images go to the upstream itself: never counted
    )
    proxy: ASGIApp = ProxyApp(
        upstream, timeout_s=settings.upstream_timeout_s, max_connections=settings.upstream_connections
    )
    if monitor.sampler is not None:  # a sample of the uploads and their answers, kept as frames (--sample-dir)
        proxy = FrameCapture(proxy, monitor.sampler, lambda: monitor.drifting, predict_paths=(settings.probe_path,))
    if measure is not None and settings.image_sample > 0:
        proxy = UploadSampler(
            proxy, monitor.recorder, settings.deployment, measure, settings.image_sample, (settings.probe_path,)
        )
    traffic = WatchMiddleware(
        proxy,
        monitor=monitor,
        excluded_paths=DEFAULT_EXCLUDED_PATHS,
        excluded_prefixes=(),  # the upstream's /api/... is its traffic
    )
    return traffic, Dispatch(_not_admin, admin_app(monitor, settings), health_router(monitor)), monitor


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to `run_sidecar`, which stops both servers together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_sidecar(settings: Settings, stack: ServerStack | None = None, measure: Measure | None = None) -> None:
    traffic, admin, _ = create_sidecar(settings, measure)
    stack = stack or server_stack()
    common = {"host": settings.host, "log_config": None, "access_log": False, "loop": stack.loop, "http": stack.http}
    servers = [
        _Server(uvicorn.Config(traffic, port=settings.port, lifespan="on", **common)),  # type: ignore[arg-type]
        _Server(uvicorn.Config(admin, port=settings.admin_port, lifespan="off", **common)),  # type: ignore[arg-type]
    ]

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    # The traffic port first: once the admin port answers /health, the proxy is accepting too.
    tasks = [asyncio.create_task(servers[0].serve())]
    while not servers[0].started and not tasks[0].done():
        await asyncio.sleep(0.02)
    if not tasks[0].done():
        tasks.append(asyncio.create_task(servers[1].serve()))
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    stop()  # one stopped (a signal, or its port was taken): stop the other too
    await asyncio.gather(*tasks)
    for task in done:
        task.result()
