"""A real PostgreSQL server for the tests: Debian's binaries, a cluster made by initdb in a temporary directory,
on a free port of 127.0.0.1, with a password (so the tests see it never shown), stopped and removed at the end.

`YOLOWATCH_TEST_POSTGRES=postgresql://user:password@host:port/postgres` uses a server of your own instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import asyncpg

from helpers import free_port

USER = "yolowatch"
PASSWORD = "pw-never-shown-4f9c"  # the tests assert this string appears in no message, log line or row


def binaries() -> Path:
    """Debian keeps initdb and pg_ctl out of PATH, in its versioned directory (the newest one installed)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError(
        "the PostgreSQL tests need a PostgreSQL server's binaries (initdb, pg_ctl): apt-get install postgresql "
        "(./scripts/test does), or set YOLOWATCH_TEST_POSTGRES to a server's URL"
    )


def _as_owner(command: list[str], owner: str | None) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the postgres user."""
    return ["runuser", "-u", owner, "--", *command] if owner else command


class Cluster:
    """A server of our own: `start()`, `stop()` (a fast shutdown, as a crash or a restart looks to clients), and
    `url` (its `postgres` database, user and password included). With `netns`, it runs in that network
    namespace and listens on `host` there; `durable` keeps fsync on (tests turn it off, benchmarks do not).
    A context manager: stopped and removed at the end."""

    def __init__(
        self, host: str = "127.0.0.1", port: int | None = None, netns: str | None = None, durable: bool = False
    ) -> None:
        self.durable = durable  # fsync as a production server does (benchmarks); tests run without it
        self.bin_dir = binaries()
        self.owner = "postgres" if os.geteuid() == 0 else None
        self.host, self.port = host, port or free_port()
        self.prefix = ["ip", "netns", "exec", netns] if netns else []
        self.work = Path(tempfile.mkdtemp(prefix="yolowatch-pg-"))
        self.data, self.log = self.work / "data", self.work / "server.log"
        self.url = f"postgresql://{USER}:{PASSWORD}@{host}:{self.port}/postgres"

    def _run(self, command: list[str], timeout_s: float = 60) -> None:
        try:
            subprocess.run(
                self.prefix + _as_owner(command, self.owner), check=True, capture_output=True, timeout=timeout_s
            )
        except subprocess.CalledProcessError as exc:
            server_log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{command[0]} failed: {exc.stderr.decode()}\n{server_log}") from exc

    def init(self) -> None:
        password_file = self.work / "password"
        password_file.write_text(PASSWORD)
        if self.owner:
            shutil.chown(self.work, self.owner)
            shutil.chown(password_file, self.owner)
        self._run(
            [str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", USER, f"--pwfile={password_file}",
             "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync"]
        )  # fmt: skip
        with (self.data / "pg_hba.conf").open("a") as hba:  # other hosts too (a fleet's), always with the password
            hba.write("host all all 0.0.0.0/0 scram-sha-256\n")

    def start(self) -> None:
        fsync = "on" if self.durable else "off"
        options = (
            f"-p {self.port} -k {self.work} -c listen_addresses={self.host} -c fsync={fsync} -c max_connections=300"
        )
        self._run(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"]
        )

    def stop(self) -> None:
        self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def __enter__(self) -> Cluster:
        try:
            self.init()
            self.start()
        except BaseException:
            shutil.rmtree(self.work, ignore_errors=True)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(self.work, ignore_errors=True)


def database_url(server_url: str, name: str) -> str:
    return server_url.rsplit("/", 1)[0] + "/" + name


async def _admin(server_url: str, *statements: str) -> None:
    connection = await asyncpg.connect(server_url)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def admin(server_url: str, *statements: str) -> None:
    """Run statements on the server now, from sync or async code alike (on a thread with its own event loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _admin(server_url, *statements)).result()


def create_database(server_url: str, name: str) -> str:
    """A new, empty database on the server; its URL."""
    admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    return database_url(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
