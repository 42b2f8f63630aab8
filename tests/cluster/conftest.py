"""Three `concierge run` processes in cluster mode behind nginx (deploy/nginx-cluster.conf), on a
throwaway PostgreSQL database, with the local Bot API delivering webhooks as Telegram does and
the vendor sandbox behind them. Residents talk through the web chat's JSON API."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from starlette.applications import Starlette

from bot.demo import DemoPersona, seed
from bot.settings import Settings
from sandbox.botapi import Persona, create_botapi_app
from sandbox.botapi.rules import Rules
from tests.conftest import PostgresServer, run_in_thread
from tests.faults.live import BotProcess, bot_env, eventually, free_port
from tests.sandbox.conftest import clock, sandbox_app, sandbox_settings
from tests.support_bot import demo_residents
from tests.support_server import serve

TOKEN = "123456:CLUSTER-demo-token"
SECRET = "cluster-webhook-secret"
NGINX_TEMPLATE = Path(__file__).parents[2] / "deploy" / "nginx-cluster.conf"
PROCESSES = 3
FIRST_RESIDENT = 7400
MANAGER = Persona(user_id=7399, name="Morgan", role="manager")

__all__ = ["clock", "sandbox_app", "sandbox_settings"]


def nginx_binary() -> str:
    """Debian's nginx (.ci/run installs it); fails under CI when missing, else skips."""
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        reason = "nginx is not installed (apt-get install nginx-light, as .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return found


def nginx_config(runtime: Path, listen: int, upstreams: list[int]) -> str:
    """The deployment page's nginx example with this run's ports and directory."""
    servers = "\n".join(f"        server 127.0.0.1:{port};" for port in upstreams)
    return (
        NGINX_TEMPLATE.read_text()
        .replace("@RUNTIME@", str(runtime))
        .replace("@LISTEN@", f"127.0.0.1:{listen}")
        .replace("@UPSTREAMS@", servers)
    )


@dataclass
class Cluster:
    """The running cluster and what the tests look at."""

    botapi_url: str
    botapi: Any  # the local Bot API's state
    sandbox: Starlette
    database_url: str
    processes: list[BotProcess]
    residents: list[Persona]
    seeded_bookings: frozenset[str]  # the Akubela bookings there were before the residents came
    started: float = field(default_factory=time.monotonic)

    def query(self, sql: str, **values: Any) -> list[Any]:
        """Rows of one SQL query on the cluster's database."""

        async def run() -> list[Any]:
            engine = create_async_engine(self.database_url, poolclass=NullPool)
            try:
                async with engine.connect() as connection:
                    return list((await connection.execute(text(sql), values)).all())
            finally:
                await engine.dispose()

        return run_in_thread(run())

    def logs(self) -> str:
        return "\n".join(process.log() for process in self.processes)


def _database(postgres_server: PostgresServer, template: str, name: str) -> str:
    run_in_thread(postgres_server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    run_in_thread(postgres_server.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    return postgres_server.url_for(name)


def residents_count() -> int:
    """How many residents run full flows (CLUSTER_RESIDENTS overrides): issue 19's 300. Under
    Telegram's 30 messages a second each of the two cluster tests takes some six minutes
    (README, Performance), whatever the machine: that limit, not the CPU, sets their pace."""
    return int(os.environ.get("CLUSTER_RESIDENTS", "300"))


@pytest.fixture
def cluster(
    postgres_server: PostgresServer,
    postgres_template: str,
    sandbox_app: Starlette,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Cluster]:
    """Everything running; stopped (and every process gone) at the end."""
    nginx = nginx_binary()
    count = residents_count()
    residents = [
        Persona(user_id=FIRST_RESIDENT + n, name=f"Resident {n}", role="resident")
        for n in range(count)
    ]
    database_url = _database(postgres_server, postgres_template, f"cluster_{os.getpid()}")
    app = create_botapi_app(
        token=TOKEN, personas=[*residents, MANAGER], rules=Rules(flood_control=True)
    )
    with serve(app) as botapi_url, serve(sandbox_app) as vendors:
        settings = Settings(
            _env_file=None,
            database_url=database_url,
            akubela_base_url=f"{vendors}/akubela",
            tuya_base_url=f"{vendors}/tuya",
            servitly_base_url=f"{vendors}/servitly",
        )
        people = demo_residents(sandbox_app)
        single = [p for p in people if len(p["residence_ids"]) == 1]
        demo = [
            DemoPersona(
                r,
                email=single[n % len(single)]["email"],
                password=single[n % len(single)]["password"],
            )
            for n, r in enumerate(residents)
        ]
        asyncio.run(seed(settings, [*demo, DemoPersona(MANAGER, manages=True)], None))

        ports = [free_port() for _ in range(PROCESSES)]
        listen = free_port()
        runtime = tmp_path / "nginx"
        runtime.mkdir()
        config = runtime / "nginx.conf"
        config.write_text(nginx_config(runtime, listen, ports))
        with (runtime / "stderr.log").open("w") as stderr:
            proxy = subprocess.Popen(  # noqa: S603 - Debian's nginx, our config
                [nginx, "-p", str(runtime), "-c", str(config), "-g", "daemon off;"],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        processes: list[BotProcess] = []
        try:
            eventually(
                lambda: httpx.get(f"http://127.0.0.1:{listen}/", timeout=1).status_code == 404,
                "nginx " + (runtime / "stderr.log").read_text(),
            )
            for number, port in enumerate(ports):
                workdir = tmp_path / f"bot{number}"
                workdir.mkdir()
                env = bot_env(
                    {
                        "TELEGRAM_BOT_TOKEN": TOKEN,
                        "TELEGRAM_BASE_URL": f"{botapi_url}/bot",
                        "DATABASE_URL": database_url,
                        "AKUBELA_BASE_URL": f"{vendors}/akubela",
                        "TUYA_BASE_URL": f"{vendors}/tuya",
                        "SERVITLY_BASE_URL": f"{vendors}/servitly",
                        "WEB_PORT": str(port),
                        "PUBLIC_BASE_URL": f"http://127.0.0.1:{listen}",
                        "RUN_MODE": "webhook",
                        "WEBHOOK_SECRET": SECRET,
                        "CLUSTER": "true",
                        "MAX_CONCURRENT_UPDATES": "24",
                        "OUTBOX_INTERVAL_SECONDS": "1",
                        "ALERT_POLL_SECONDS": "5",
                    }
                )
                process = BotProcess(env, workdir, port)
                process.start(120)
                processes.append(process)
            akubela = sandbox_app.state.control.vendors["akubela"]
            yield Cluster(
                botapi_url,
                app.state.botapi,
                sandbox_app,
                database_url,
                processes,
                residents,
                frozenset(akubela._bookings),
            )
        finally:
            for process in processes:
                if process.process is not None:
                    process.stop(signal.SIGTERM)
            proxy.terminate()
            proxy.wait(timeout=10)
            app.state.botapi.close()
    run_in_thread(
        postgres_server.execute(f'DROP DATABASE IF EXISTS "cluster_{os.getpid()}" WITH (FORCE)')
    )
