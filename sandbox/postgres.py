"""A throwaway PostgreSQL server from Debian's binaries, for the tests and the bench: its own
data directory, loopback only, trust authentication, and no durability (fsync off); and the one
way the tests and the bench make and drop databases on it (or on any server they are given)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg


class PostgresUnavailable(RuntimeError):
    """The binaries are missing or the server would not start."""


def bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin directory, or None."""
    candidates = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not candidates:
        return None
    newest = max(candidates, key=lambda path: int(Path(path).parent.parent.name))
    return Path(newest).parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _as_postgres_user(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


def _run(command: list[str], log: Path | None = None) -> None:
    result = subprocess.run(  # noqa: S603 - fixed binaries, arguments built here
        _as_postgres_user(command), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        log_tail = log.read_text()[-2000:] if log is not None and log.exists() else ""
        raise PostgresUnavailable(
            f"{command[0]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n"
            f"{log_tail}"
        )


@contextlib.contextmanager
def throwaway_server(max_connections: int = 200) -> Iterator[str]:
    """Starts a server; yields the libpq URL of its `postgres` database; stops and deletes it."""
    found = bin_dir()
    if found is None:
        raise PostgresUnavailable("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
    # Not under a private (0700) tmp tree: the postgres user must reach the cluster.
    root = Path(tempfile.mkdtemp(prefix="concierge-pg-"))
    data = root / "data"
    log = root / "server.log"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = _free_port()
    initdb = [str(found / "initdb"), "--pgdata", str(data), "--username", "postgres"]
    _run([*initdb, "--auth", "trust", "--encoding", "UTF8", "--locale", "C", "--no-sync"])
    # A test cluster: durability is worthless here and fsync is most of the cost.
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='' "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
        f"-c max_connections={max_connections}"
    )
    pg_ctl = str(found / "pg_ctl")
    _run([pg_ctl, "--pgdata", str(data), "--log", str(log), "-o", options, "-w", "start"], log)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        _run([pg_ctl, "--pgdata", str(data), "-m", "immediate", "-w", "stop"], log)
        shutil.rmtree(root, ignore_errors=True)


async def run_maintenance(server_url: str, statement: str) -> None:
    """Runs one statement (CREATE or DROP DATABASE) on a server's maintenance database, given
    by its libpq URL (postgresql://...), outside any transaction."""
    # CREATE/DROP DATABASE cannot run inside a transaction, and asyncpg opens none unless asked.
    # The driver straight, not SQLAlchemy: only bot/storage may use SQLAlchemy, and this is no
    # statement of the product's (tests/bot/test_storage_owns_sql.py).
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()
