"""The upstream benchmarks/sidecar.py puts proxies in front of: a fast predict server (uvicorn --factory ...:app).

POST /predict reads a multipart upload (any other body is read whole) and answers a three-detection
Ultralytics-shaped body, as a real predict server would after its model ran; GET /health answers 200.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

# What a predict server answers for one image with three objects (as in benchmarks/overhead_apps.py).
BODY = {
    "images": [
        {
            "shape": [480, 640],
            "speed": {"preprocess": 1.2, "inference": 12.4, "postprocess": 0.8},
            "results": [
                {"class": k, "name": n, "confidence": c, "box": {"x1": 10.0, "y1": 20.0, "x2": 110.0, "y2": 140.0}}
                for k, n, c in ((0, "circle", 0.91), (1, "square", 0.84), (3, "star", 0.55))
            ],
        }
    ],
    "metadata": {"imageCount": 1, "task": "detect", "model": "bench.pt"},
}


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
