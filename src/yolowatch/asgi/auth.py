"""Bearer API keys: checking a request in constant time, and the 401 that says what to send (keys are loaded
with the settings: `Settings.admin_keys`)."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from yolowatch.errors import json_error


class KeyCheck:
    """Whether a request carries one of the keys. No keys configured: everything is allowed."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = tuple(key.encode() for key in keys)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def allows(self, headers: Headers) -> bool:
        if not self._keys:
            return True
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        presented = token.strip().encode()
        allowed = False
        for key in self._keys:  # every key is compared, so the time does not tell which one nearly matched
            allowed |= hmac.compare_digest(presented, key)
        return allowed


def unauthorized(what: str = "this route") -> JSONResponse:
    return json_error(
        401,
        f"{what} needs an API key: send 'Authorization: Bearer <key>'",
        headers={"WWW-Authenticate": 'Bearer realm="yolowatch"'},
    )


class RequireKey:
    """ASGI guard for the predict routes when they have a key of their own (the `predict_api_key` setting)."""

    def __init__(self, app: ASGIApp, check: KeyCheck, paths: Iterable[str] = ("/predict",)) -> None:
        self.app = app
        self.check = check
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in self.paths and not self.check.allows(Headers(scope=scope)):
            await unauthorized("predict")(scope, receive, send)
            return
        await self.app(scope, receive, send)
