"""The HTTP clients the sidecar's proxy was chosen from, each as a bare streaming proxy (no monitoring).

Each candidate is an ASGI app that streams the request body to the upstream and the response back,
served by uvicorn (uvloop, httptools) on core 0 beside the upstream, as the sidecar runs; `wrk` on
core 1 posts a 100 KiB multipart upload. Rounds are interleaved. Candidates:

    httpx      httpx.AsyncClient (httpcore), send(stream=True): what the sidecar used before
    aiohttp    aiohttp.ClientSession with a TCPConnector of 100 (pip install aiohttp to include it)
    yolowatch  yolowatch.asgi.proxy.ProxyApp: asyncio Protocol + httptools, what the sidecar uses now

    python benchmarks/proxy_candidates.py [--connections 16 64] [--rounds 3] [--seconds 6]
    uvicorn --factory proxy_candidates:httpx_app --app-dir benchmarks   (UPSTREAM=http://127.0.0.1:9000)
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "expect"}


def httpx_app() -> Any:
    import httpx

    upstream = os.environ["UPSTREAM"]
    client = httpx.AsyncClient(base_url=upstream, timeout=60, trust_env=False)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(k, v) for k, v in scope["headers"] if k.decode().lower() not in HOP_BY_HOP]
        request = client.build_request(
            scope["method"], scope["raw_path"].decode(), headers=headers, content=_body(receive)
        )
        response = await client.send(request, stream=True)
        try:
            raw = [(k, v) for k, v in response.headers.raw if k.decode().lower() not in HOP_BY_HOP]
            await send({"type": "http.response.start", "status": response.status_code, "headers": raw})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    return app


def aiohttp_app() -> Any:
    import aiohttp

    upstream = os.environ["UPSTREAM"]
    session: list[aiohttp.ClientSession] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if not session:
            connector = aiohttp.TCPConnector(limit=100)
            session.append(aiohttp.ClientSession(connector=connector, auto_decompress=False))
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"] if k.decode().lower() not in HOP_BY_HOP]
        async with session[0].request(
            scope["method"],
            upstream + scope["raw_path"].decode(),
            headers=headers,
            data=_body(receive),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        ) as response:
            raw = [(k, v) for k, v in response.raw_headers if k.decode().lower() not in HOP_BY_HOP]
            await send({"type": "http.response.start", "status": response.status, "headers": raw})
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})

    return app


def yolowatch_app() -> Any:
    from yolowatch.asgi.proxy import ProxyApp

    return ProxyApp(os.environ["UPSTREAM"])


async def _body(receive: Any) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message.get("body"):
            yield message["body"]
        if not message.get("more_body"):
            return


@contextlib.contextmanager
def _proxy(name: str, upstream: str) -> Iterator[str]:
    import loadgen

    port = loadgen.free_port()
    command = ["taskset", "-c", "0", sys.executable, "-m", "uvicorn", "--factory", f"proxy_candidates:{name}_app",
               "--app-dir", str(HERE), "--port", str(port), "--loop", "uvloop", "--http", "httptools",
               "--log-level", "warning", "--no-access-log"]  # fmt: skip
    with loadgen.process(command, f"http://127.0.0.1:{port}/health", env={**os.environ, "UPSTREAM": upstream}):
        yield f"http://127.0.0.1:{port}"


def main() -> None:
    sys.path.insert(0, str(HERE))
    import loadgen
    import sidecar

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=6)
    args = parser.parse_args()
    names = ["httpx", "yolowatch"] + (["aiohttp"] if importlib.util.find_spec("aiohttp") else [])
    if "aiohttp" not in names:
        print("aiohttp is not installed: leaving it out (pip install aiohttp)")
    results: dict[tuple[str, int], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        script = sidecar.write_upload_script(Path(tmp), 100 * 1024)
        upstream = stack.enter_context(sidecar.upstream_server()).base
        bases = {"direct": upstream} | {name: stack.enter_context(_proxy(name, upstream)) for name in names}
        for base in bases.values():
            loadgen.wrk(base, 2, 16, script)  # warm up
        for round_ in range(args.rounds):
            for connections in args.connections:
                order = list(bases.items()) if round_ % 2 == 0 else list(reversed(bases.items()))
                for name, base in order:
                    run = loadgen.wrk(base, args.seconds, connections, script, strict=False)
                    results.setdefault((name, connections), []).append((run.rps, run.p99_ms))
                    print(
                        f"round {round_ + 1} c={connections:<3} {name:<9} {run.rps:8.0f} req/s p99 {run.p99_ms:.2f} ms",
                        *run.errors,
                    )
    print("\n100 KiB multipart uploads; medians; ratio = median of per-round ratios to direct")
    for connections in args.connections:
        direct = results[("direct", connections)]
        for name in bases:
            runs = results[(name, connections)]
            ratio = statistics.median(r[0] / d[0] for r, d in zip(runs, direct, strict=True))
            rps, p99 = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
            print(f"c={connections:<3} {name:<9} {rps:8.0f} req/s  {ratio:6.3f} of direct  p99 {p99:7.2f} ms")


if __name__ == "__main__":
    main()
