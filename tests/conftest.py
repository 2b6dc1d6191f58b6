"""Which modules need the yolo extra, and the fixtures: a fake clock, factories of stores and servers that clean
up after themselves, a webhook receiver, and a check that no store was left open. The helpers they use live
in helpers.py."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import FakeClock, WebhookReceiver, run_server, wait_until
from postgres import Cluster, create_database, drop_database
from yolowatch.store import Store

# Whether the yolo extra (ultralytics, OpenCV, scipy) is installed: the light install's run (Python 3.10 in
# scripts/test) has only the middleware, sidecar, admin and store. These modules need the extra throughout
# (the bundled model, real images, the KS distribution); tests elsewhere that need it carry @pytest.mark.yolo.
# test_admin.py is in-process over a recorded store (light); the admin API's real-server tests are in test_serve.py.
YOLO_EXTRA = all(importlib.util.find_spec(name) is not None for name in ("ultralytics", "cv2", "scipy"))
YOLO_MODULES = frozenset(
    {
        "test_dashboard.py", "test_drift.py", "test_holdout.py", "test_offline.py", "test_predict.py",
        "test_quality.py", "test_quality_e2e.py", "test_serve.py", "test_serve_store.py", "test_shapes.py",
        "test_imagestats.py", "test_signals_e2e.py", "test_traffic.py", "test_uploads.py", "test_golden_e2e.py",
        "test_samples_e2e.py", "test_otlp_e2e.py",
    }
)  # fmt: skip


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Without the extra, its test modules cannot even be imported: leave them out (the summary says so)."""
    return True if not YOLO_EXTRA and collection_path.name in YOLO_MODULES else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in YOLO_MODULES:
            item.add_marker(pytest.mark.yolo)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not YOLO_EXTRA:
        terminalreporter.write_line(
            f"light install: the yolo extra is not installed; {len(YOLO_MODULES)} test modules that need it were "
            "not collected (the full run with the extra has them)"
        )


@pytest.fixture(scope="session", autouse=True)
def _ultralytics_config(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep ultralytics' settings file out of the user's home during tests."""
    os.environ.setdefault("YOLO_CONFIG_DIR", str(tmp_path_factory.mktemp("yolo-config")))


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """`main()` run in-process sets a root handler on the stderr of that moment (pytest's capture file, closed
    after the test): remove it, so no later log line (a background thread's) meets a closed stream."""
    root = logging.getLogger()
    before, level = set(root.handlers), root.level
    yield
    for handler in root.handlers[:]:
        if type(handler) is logging.StreamHandler and handler not in before:  # configure_logging's own
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _store_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if "_connection_worker_thread" in t.name and t.is_alive()}


@pytest.fixture(autouse=True)
def _no_leaked_store_threads() -> Iterator[None]:
    """A Store left open keeps a non-daemon aiosqlite thread alive and hangs interpreter exit."""
    before = _store_threads()
    yield
    try:  # a connection closed at the very end of a test may need a moment for its thread to finish
        wait_until(lambda: not _store_threads() - before, "store connections to close", timeout_s=5)
    except AssertionError:
        pytest.fail(f"store connections left open: {sorted(t.name for t in _store_threads() - before)}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a real PostgreSQL server's `postgres` database, started for this test session (tests/postgres.py),
    or YOLOWATCH_TEST_POSTGRES's."""
    external = os.environ.get("YOLOWATCH_TEST_POSTGRES")
    if external:
        yield external
        return
    with Cluster() as cluster:
        yield cluster.url


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Which store a test runs on: it runs on both. A test of what one dialect alone has (SQLite's locked or full
    file, say) says `@pytest.mark.parametrize("backend", ["sqlite"])`."""
    return str(request.param)


@pytest.fixture
def database(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[str], str]]:
    """A factory of databases on the test's backend: `database("name.db")` is a file in `tmp_path`, or a new
    database on the session's PostgreSQL server (its URL), dropped after the test. The same name gives the same
    database again."""
    made: dict[str, str] = {}
    server = request.getfixturevalue("postgres_server") if backend == "postgresql" else ""

    def make(name: str = "test.db") -> str:
        if name not in made:
            made[name] = str(tmp_path / name) if backend == "sqlite" else create_database(server, new_name())
        return made[name]

    yield make
    if backend == "postgresql":
        for url in made.values():
            drop_database(server, url.rsplit("/", 1)[-1])


def new_name() -> str:
    return f"yw_{uuid.uuid4().hex[:16]}"


@pytest.fixture
async def make_store(
    anyio_backend: str, database: Callable[[str], str], clock: FakeClock
) -> AsyncIterator[Callable[..., Store]]:
    """A factory of stores on new databases of the test's backend (`make_store("name.db", **options)`, on the
    test's fake clock unless told otherwise); every store it made is closed after the test, passed or failed.
    The same name gives the same database (a second process on it, or the same one after a restart)."""
    made: list[Store] = []

    def make(name: str = "test.db", **options: Any) -> Store:
        options.setdefault("clock", clock)
        store = Store(database(name), **options)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., str]]:
    """A factory of real `yolowatch serve` processes: `serve(*args, env=..., output=...)` starts one on a free port
    and returns its base URL once healthy; each is stopped after the test."""
    with contextlib.ExitStack() as servers:

        def start(*args: str, **options: Any) -> str:
            return servers.enter_context(run_server(list(args), **options))

        yield start


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A real webhook receiver on 127.0.0.1 (its `url`, the `bodies` it got, `failing` to make it answer 500)."""
    with WebhookReceiver() as running_receiver:
        yield running_receiver
