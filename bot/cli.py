"""The `concierge` command: one entry point for every way the bot and its sandbox run."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import socket
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from bot import community_admin
from bot.logs import configure_logging
from bot.settings import Settings

logger = logging.getLogger("concierge")


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


def _cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from bot.runner import run_bot

    if not _port_is_free(settings.web_host, settings.web_port):
        print(
            f"Port {settings.web_port} on {settings.web_host} is busy; set WEB_PORT.",
            file=sys.stderr,
        )
        return 2
    asyncio.run(run_bot(settings))
    return 0


def _cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    from bot.demo import run_demo

    wanted = [
        ("SANDBOX_PORT", settings.sandbox_host, settings.sandbox_port),
        ("DEMO_PORT", settings.demo_host, settings.demo_port),
        ("WEB_PORT", settings.web_host, settings.web_port),
    ]
    for name, host, port in wanted:
        if not _port_is_free(host, port):
            print(f"Port {port} on {host} is busy; set {name} to a free port.", file=sys.stderr)
            return 2
    asyncio.run(run_demo(settings, workdir=Path.cwd()))
    return 0


def _cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    from bot.check import run_checks

    results = asyncio.run(run_checks(settings))
    for result in results:
        print(result.line())
    return 0 if all(result.ok for result in results) else 1


def _cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from bot.communities import migrate

    made = asyncio.run(migrate(settings))
    print("Database is up to date.")
    if made:
        print("Community 1 was made from the settings (see `concierge community show 1`).")
    return 0


async def _bot_username(settings: Settings) -> str | None:
    from telegram import Bot
    from telegram.error import TelegramError

    from bot.app import file_url_for

    bot = Bot(
        settings.telegram_bot_token.get_secret_value(),
        base_url=settings.telegram_base_url,
        base_file_url=file_url_for(settings.telegram_base_url),
    )
    try:
        async with bot:
            return bot.username
    except (TelegramError, OSError):
        return None


async def _invite(settings: Settings, args: argparse.Namespace) -> int:
    from bot.communities import migrate
    from bot.storage.repositories import Storage
    from conversations.domain import Role

    await migrate(settings)
    storage = Storage.open(settings.database_url)
    names: list[str] = []
    try:
        for community_id in getattr(args, "community", None) or ():
            found = await storage.communities.get(community_id)
            if found is None:
                print(
                    f"There is no community {community_id}: `concierge community list` shows "
                    "them. No invite was made.",
                    file=sys.stderr,
                )
                return 2
            names.append(f"{found.name_en} ({community_id})")
        code = await storage.invites.create(
            Role(args.role),
            worker_id=getattr(args, "worker_id", None),
            project_id=getattr(args, "project", None),
            community_ids=getattr(args, "community", None) or (),
            expires_at=datetime.now(UTC) + timedelta(hours=settings.invite_ttl_hours),
        )
    finally:
        await storage.close()
    username = await _bot_username(settings)
    serving = f" of {', '.join(names)}" if names else ""
    print(
        f"Invite for a {args.role}{serving}, valid {settings.invite_ttl_hours:g} hours, "
        "single use."
    )
    if username:
        print(f"Link: https://t.me/{username}?start={code}")
    print(f"Code: {code}  (or send: /start {code})")
    return 0


def _cmd_invite(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_invite(settings, args))


def build_parser() -> argparse.ArgumentParser:
    """The command line: one sub-command per way of running."""
    parser = argparse.ArgumentParser(prog="concierge", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    commands = parser.add_subparsers(dest="command", required=True)

    sandbox = commands.add_parser("sandbox", help="serve the three vendor APIs locally")
    sandbox.add_argument("--host", help="address to listen on (default SANDBOX_HOST)")
    sandbox.add_argument("--port", type=int, help="port to listen on (default SANDBOX_PORT)")
    sandbox.set_defaults(handler=_cmd_sandbox)

    demo = commands.add_parser("demo", help="the bot on the embedded sandbox, in a web chat")
    demo.set_defaults(handler=_cmd_demo)

    run = commands.add_parser("run", help="run the bot (polling or webhook, see RUN_MODE)")
    run.set_defaults(handler=_cmd_run)

    check = commands.add_parser(
        "check", help="check settings, database, vendors and Telegram; only reads"
    )
    check.set_defaults(handler=_cmd_check)

    migrate = commands.add_parser("migrate", help="bring the database schema up to date")
    migrate.set_defaults(handler=_cmd_migrate)

    community_admin.add_parser(commands)

    invite = commands.add_parser("invite", help="make a single-use invite link")
    roles = invite.add_subparsers(dest="role", required=True)
    worker = roles.add_parser("worker", help="for a maintenance worker")
    worker.add_argument("--worker-id", required=True, help="the Tuya worker id")
    manager = roles.add_parser("manager", help="for a property manager")
    manager.add_argument(
        "--project", help="the one project they manage (default: their communities' projects)"
    )
    for staff in (worker, manager):
        staff.add_argument(
            "--community",
            required=True,
            action="extend",
            type=community_ids,
            metavar="ID[,ID...]",
            help="the community they serve (repeat it, or list them with commas)",
        )
    roles.add_parser("admin", help="for an administrator")
    invite.set_defaults(handler=_cmd_invite)
    return parser


def community_ids(text: str) -> list[int]:
    """Community ids as typed after --community: one, or several with commas."""
    ids = [part.strip() for part in text.split(",") if part.strip()]
    if not ids or not all(part.isdigit() and int(part) > 0 for part in ids):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a community id: give its number, as `concierge community list` "
            "shows it (several with commas: 1,2)"
        )
    return [int(part) for part in ids]


def settings_problems(exc: ValidationError) -> list[str]:
    """Each problem with the settings in words, naming the setting where there is one."""
    problems = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        where = ".".join(str(part) for part in error["loc"])
        problems.append(f"Setting {where.upper()}: {message}" if where else message)
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the `concierge` command."""
    # PTB 22 reports durations as timedelta only when asked; without this every RetryAfter
    # warns. Set here, where the process starts, never as a side effect of an import.
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        # Refused before anything is opened or written: no log file, database or socket.
        for problem in settings_problems(exc):
            if args.command == "check":
                print(f"FAIL  settings: {problem}")
            else:
                print(problem, file=sys.stderr)
        return 1 if args.command == "check" else 2
    configure_logging(verbose=args.verbose, json_lines=settings.log_format == "json")
    code: int = args.handler(settings, args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
