"""The `concierge` command: one entry point for every way the bot and its sandbox run."""

from __future__ import annotations

import argparse
import errno
import logging
import socket
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from api import redaction
from bot.settings import Settings

logger = logging.getLogger("concierge")


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every URL at INFO, and Telegram URLs carry the bot token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    redaction.install()


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def _cmd_sandbox(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from sandbox.app import create_app

    host = args.host or settings.sandbox_host
    port = args.port or settings.sandbox_port
    if not _port_is_free(host, port):
        print(f"Port {port} on {host} is busy; choose another with --port.", file=sys.stderr)
        return 2
    app = create_app(settings, auto_advance_every=settings.sandbox_auto_advance_seconds)
    print(f"Vendor sandbox on http://{host}:{port} (demo data: /_sandbox/demo)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line: one sub-command per way of running."""
    parser = argparse.ArgumentParser(prog="concierge", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    commands = parser.add_subparsers(dest="command", required=True)

    sandbox = commands.add_parser("sandbox", help="serve the three vendor APIs locally")
    sandbox.add_argument("--host", help="address to listen on (default SANDBOX_HOST)")
    sandbox.add_argument("--port", type=int, help="port to listen on (default SANDBOX_PORT)")
    sandbox.set_defaults(handler=_cmd_sandbox)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the `concierge` command."""
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    try:
        settings = Settings()
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "settings"
            print(f"Setting {where.upper()}: {error['msg']}", file=sys.stderr)
        return 2
    code: int = args.handler(settings, args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
