"""Bench children: a command run to its end, and a server in a child process on a loopback
port, started, waited for, stopped.

A server child (`python -m MODULE ARGS`) binds 127.0.0.1 on a port it picks, prints the port as its
first line, then serves until terminated.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path
from typing import Self

import httpx

REPO = Path(__file__).resolve().parent.parent


def loopback_socket() -> socket.socket:
    """A listening-ready socket on 127.0.0.1, on a port of the system's choosing."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this; without it each answer's body waits ~40 ms for the
    # client's delayed ACK (Nagle), and asyncio only sets it on sockets made with proto=TCP.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


async def run_child(*command: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> str:
    """Runs a command to its end; its standard output, or an error with its standard error."""
    child = await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"{command[0]} failed in {cwd}: {err.decode(errors='replace')[-2000:]}")
    return out.decode()


class ChildServer:
    """`python -m module *arguments` in a child process, ready once `health` answers 200."""

    def __init__(self, module: str, arguments: list[str], *, health: str) -> None:
        self._command = [sys.executable, "-m", module, *arguments]
        self._health = health
        self._child: asyncio.subprocess.Process | None = None
        self.base = ""

    async def __aenter__(self) -> Self:
        self._child = await asyncio.create_subprocess_exec(
            *self._command,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self._child.stdout is not None
        line = await asyncio.wait_for(self._child.stdout.readline(), 60)
        if not line.strip().isdigit():
            await self._stop()
            raise RuntimeError(f"{self._command[2]} did not start")
        self.base = f"http://127.0.0.1:{int(line)}"
        async with httpx.AsyncClient(base_url=self.base) as client:
            for _ in range(600):
                try:
                    if (await client.get(self._health)).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        await self._stop()
        raise RuntimeError(f"{self._command[2]} never answered its health check")

    async def _stop(self) -> None:
        if self._child is not None and self._child.returncode is None:
            self._child.terminate()
            await self._child.communicate()

    async def __aexit__(self, *exc: object) -> None:
        await self._stop()
