"""The upstream benchmarks/sidecar.py puts proxies in front of: a fast predict server (uvicorn --factory ...:app).

POST /predict reads a multipart upload (any other body is read whole) and answers a three-detection
Ultralytics-shaped body, as a real predict server would after its model ran; GET /health answers 200.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from overhead_apps import BODY  # what a predict server answers for one image with three objects


async def predict(request: Request) -> Response:
    try:
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await request.form()
            upload = form["file"]
            await upload.read()  # type: ignore[union-attr]
            await form.close()
        else:
            await request.body()
    except ClientDisconnect:  # wrk abandons its requests in flight when it stops; a proxy passes that on
        return Response(status_code=499)
    return JSONResponse(BODY)


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def app() -> Starlette:
    return Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/health", health)])
