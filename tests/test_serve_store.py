"""`yolowatch serve` records every request durably, through database faults and restarts (real processes)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from helpers import run_server, wait_until
from images import shapes_jpeg
from yolowatch.store import Store

pytestmark = pytest.mark.slow


def _requests_in(db: Path) -> int:
    """Requests of deployment 'demo' in the last hour, read from the file by a store of its own."""

    async def read() -> int:
        store = Store(db)
        try:
            return int((await store.summary("demo", "1h"))["requests"])
        finally:
            await store.close()

    return asyncio.run(read())


def _predict(base_url: str, n: int) -> list[int]:
    """The statuses of `n` predictions of a shapes image."""
    data = shapes_jpeg(0)[0]
    return [
        httpx.post(f"{base_url}/predict", files={"file": ("a.jpg", data)}, timeout=60).status_code for _ in range(n)
    ]


@contextlib.contextmanager
def read_only_folder(folder: Path) -> Iterator[Callable[[], None]]:
    """Make `folder` really read-only; yields a function that makes it writable again.

    As root file modes do not bind, so the folder is bind-mounted read-only (EROFS for every
    process); otherwise its files lose their write permission.
    """
    files = sorted(folder.iterdir())
    if os.geteuid() == 0:
        bound = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True, text=True)
        if bound.returncode != 0:  # a container without CAP_SYS_ADMIN: no way to make it read-only for root
            pytest.skip(f"cannot bind-mount a folder read-only here: {bound.stderr.strip()}")
        subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True)
        try:
            yield lambda: subprocess.run(["mount", "-o", "remount,rw,bind", str(folder)], check=True)
        finally:
            subprocess.run(["umount", "--lazy", str(folder)], check=True)
    else:
        for path in files:
            path.chmod(0o444)
        folder.chmod(0o555)
        try:
            yield lambda: [folder.chmod(0o755), *(path.chmod(0o644) for path in files)]
        finally:
            folder.chmod(0o755)


def test_requests_survive_read_only_and_locked_database_and_restart(tmp_path: Path) -> None:
    """Read-only at start, then locked: every predict succeeds, nothing is lost, a restart keeps it all."""
    folder = tmp_path / "data"
    folder.mkdir()
    db = folder / "monitor.db"
    asyncio.run(_create(db))
    with read_only_folder(folder) as make_writable, run_server(["--db", str(db)]) as base_url:
        assert _predict(base_url, 5) == [200] * 5  # database read-only: served anyway
        make_writable()
        wait_until(lambda: _requests_in(db) == 5, "the backlog of 5 to land", every_s=0.2)  # writable again

        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        assert _predict(base_url, 5) == [200] * 5  # database locked: served anyway, and promptly
        assert time.monotonic() - started < 10
        blocker.execute("COMMIT")
        blocker.close()
        wait_until(lambda: _requests_in(db) == 10, "the 5 held during the lock to land", every_s=0.2)

    with run_server(["--db", str(db)]) as base_url:
        assert _predict(base_url, 2) == [200] * 2
    assert _requests_in(db) == 12  # the shutdown flush wrote the last two; the first ten are still there


async def _create(db: Path) -> None:
    """A new, empty database file at `db`."""
    async with Store(db):
        pass
