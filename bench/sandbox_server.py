"""The vendor sandbox for figure 1, in its own process, so the bot's process does only the bot's
work (its CPU time is the bot's alone).

`python -m bench.sandbox_server` serves the sandbox with its demo seed, built from the bench's
settings (the bot's, so clients and secrets match), on 127.0.0.1, on a port it picks and prints
first. Latency is set through its control API (`/_sandbox/faults`).
"""

from __future__ import annotations

import uvicorn

from bench.child_server import loopback_socket
from bench.harness import bench_settings, new_sandbox

HEALTH_PATH = "/_sandbox/demo"


def main() -> None:
    """Serves until terminated; the first line printed is the port."""
    sock = loopback_socket()
    # The parent reads the port from this first line.
    print(sock.getsockname()[1], flush=True)
    # The sandbox keeps its state in memory; the URL only satisfies the settings.
    app = new_sandbox(bench_settings("sqlite+aiosqlite:///:memory:"))
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
