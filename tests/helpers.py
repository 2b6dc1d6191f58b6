"""Test helpers that several test modules share: in-process admin clients over a temporary store."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from yolowatch.admin import admin_router
from yolowatch.store import Store


def admin_client(store: Store, **router_options: Any) -> TestClient:
    """A TestClient for the admin router over `store`; leaving its `with` block closes the store's connections
    (opened on the client's own event loop)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await store.close()

    return TestClient(Starlette(routes=[Mount("/", admin_router(store, **router_options))], lifespan=lifespan))


async def registered_store(path: Any, deployments: Iterable[str] = ("demo",), **options: Any) -> None:
    """Create the database at `path` with these deployments registered (and close it again)."""
    async with Store(path, **options) as store:
        for deployment in deployments:
            await store.register_deployment(deployment)
