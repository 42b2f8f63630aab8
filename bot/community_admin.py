"""`concierge community add|edit|list|show|import`: the deployment's communities, kept in the
database and checked before they are saved (errors in plain words, secrets never printed).

Every way in (the options, a `communities.toml`) becomes the same flat changes, applied to a
community (a new one starts from the settings' vendor URLs and logins) and checked whole.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
import tomllib
from collections.abc import Mapping, Sequence
from datetime import time, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bot.communities import (
    CommunityAccess,
    community_from_settings,
    problems,
    rules_data,
    rules_of,
    stored_communities,
    stored_values,
)
from bot.crypto import TokenCipher, TokenDecryptError
from bot.settings import Settings
from bot.storage.migrate import upgrade
from bot.storage.repositories import Storage
from conversations.community import AmenityRules

# Changes a community takes, by name; the options and the TOML file both give these.
TEXT_FIELDS = (
    "name_en",
    "name_zh",
    "time_zone",
    "phone_region",
    "akubela_base_url",
    "akubela_project_id",
    "manager_username",
    "tuya_project_id",
    "servitly_tenant",
)


class Refused(Exception):
    """What the operator asked for cannot be done; the message says why, in plain words."""


def _time(value: object, what: str) -> time:
    try:
        return time.fromisoformat(str(value))
    except ValueError:
        raise Refused(f"{what}: {value!r} is not a time of day such as 08:00") from None


def _minutes(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise Refused(f"{what}: {value!r} is not a number of minutes")
    try:
        return int(value)
    except ValueError:
        raise Refused(f"{what}: {value!r} is not a number of minutes") from None


def _rules(value: object, what: str, base: AmenityRules) -> AmenityRules:
    if not isinstance(value, Mapping):
        raise Refused(f"{what}: expected grid_minutes, min_minutes, max_minutes, horizon_days")
    try:
        return rules_of(dict(value), base)
    except ValueError as exc:
        raise Refused(f"{what}: {exc}") from None


def _string_map(value: object, what: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise Refused(f"{what}: expected a table of names to ids")
    return {str(k): str(v) for k, v in value.items()}


def apply(access: CommunityAccess, changes: Mapping[str, Any]) -> CommunityAccess:
    """`access` with `changes` made (names as in TEXT_FIELDS, plus the others below)."""
    community = access.community
    fields: dict[str, Any] = {}
    vendor: dict[str, Any] = {}
    for name, value in changes.items():
        if name in ("akubela_base_url", "manager_username"):
            vendor[name] = str(value).strip()
        elif name == "manager_password":
            vendor[name] = SecretStr(str(value))
        elif name in TEXT_FIELDS:
            fields[name] = str(value).strip()
        elif name == "languages":
            if isinstance(value, str):
                value = [part.strip() for part in value.split(",") if part.strip()]
            fields[name] = tuple(str(code) for code in value)
        elif name in ("service_hours_start", "service_hours_end"):
            fields[name] = _time(value, name.replace("_", " "))
        elif name in ("escalate_repair_minutes", "escalate_task_minutes"):
            label = "escalate_repair_after" if "repair" in name else "escalate_task_after"
            fields[label] = timedelta(minutes=_minutes(value, name.replace("_", " ")))
        elif name == "tuya_room_of_residence":
            fields[name] = _string_map(value, "Tuya rooms of residences")
        elif name == "servitly_location_map":
            if not isinstance(value, Mapping):
                raise Refused("Servitly location map: expected a table of rooms")
            fields[name] = {str(k): _string_map(v, f"room {k}") for k, v in value.items()}
        elif name == "amenity_defaults":
            fields[name] = _rules(value, "amenity defaults", community.amenity_defaults)
        elif name == "amenity_rules":
            if not isinstance(value, Mapping):
                raise Refused("amenity rules: expected a table per amenity id")
            defaults = fields.get("amenity_defaults", community.amenity_defaults)
            merged = dict(community.amenity_rules)
            for amenity_id, rules in value.items():
                base = merged.get(str(amenity_id), defaults)
                merged[str(amenity_id)] = _rules(rules, f"amenity {amenity_id}", base)
            fields[name] = merged
        else:
            raise Refused(f"unknown setting {name!r}")
    return dataclasses.replace(
        access, community=dataclasses.replace(community, **fields), **vendor
    )


def new_community(settings: Settings, community_id: int) -> CommunityAccess:
    """A community before its own values: the settings' vendor URLs and manager login, the
    default rules, no projects of its own."""
    base = community_from_settings(settings, community_id)
    blank = dataclasses.replace(
        base.community,
        name_en="",
        name_zh="",
        akubela_project_id="",
        tuya_project_id="",
        tuya_room_of_residence={},
        servitly_location_map={},
    )
    return dataclasses.replace(base, community=blank)


def describe(access: CommunityAccess) -> list[str]:
    """A community for `show`, every value but the manager's password."""
    c = access.community
    lines = [
        f"Community {c.id}: {c.name_en} / {c.name_zh}",
        f"  time zone:         {c.time_zone}",
        f"  languages:         {', '.join(c.languages)}",
        f"  phone region:      {c.phone_region}",
        f"  service hours:     {c.service_hours_start:%H:%M}-{c.service_hours_end:%H:%M}",
        f"  escalate repairs:  after {int(c.escalate_repair_after.total_seconds() // 60)} min",
        f"  escalate tasks:    after {int(c.escalate_task_after.total_seconds() // 60)} min",
        f"  Akubela:           {access.akubela_base_url} project {c.akubela_project_id}",
        f"  manager login:     {access.manager_username} (password set, not shown)",
        f"  Tuya project:      {c.tuya_project_id} ({len(c.tuya_room_of_residence)} rooms mapped)",
        f"  Servitly tenant:   {c.servitly_tenant} ({len(c.servitly_location_map)} rooms mapped)",
        "  amenity defaults:  " + _rules_text(c.amenity_defaults),
    ]
    lines += [f"  amenity {k}: {_rules_text(v)}" for k, v in sorted(c.amenity_rules.items())]
    return lines


def _rules_text(rules: AmenityRules) -> str:
    data = rules_data(rules)
    return (
        f"grid {data['grid_minutes']} min, {data['min_minutes']}-{data['max_minutes']} min, "
        f"up to {data['horizon_days']} days ahead"
    )


# ---- the TOML file ---------------------------------------------------------------------------


def changes_from_toml(entry: Mapping[str, Any], where: str) -> tuple[int, dict[str, Any]]:
    """One `[[community]]` table as its id and flat changes."""
    entry = dict(entry)
    community_id = entry.pop("id", None)
    if isinstance(community_id, bool) or not isinstance(community_id, int):
        raise Refused(f"{where}: every community needs a whole-number id")
    changes: dict[str, Any] = {}
    hours = entry.pop("service_hours", None)
    if hours is not None:
        if not isinstance(hours, list) or len(hours) != 2:
            raise Refused(f'{where}: service_hours is a pair such as ["08:00", "20:00"]')
        changes["service_hours_start"], changes["service_hours_end"] = hours
    for table, names in (
        (
            "akubela",
            {
                "base_url": "akubela_base_url",
                "project_id": "akubela_project_id",
                "manager_username": "manager_username",
            },
        ),
        ("tuya", {"project_id": "tuya_project_id", "room_of_residence": "tuya_room_of_residence"}),
        ("servitly", {"tenant": "servitly_tenant", "location_map": "servitly_location_map"}),
    ):
        part = dict(entry.pop(table, {}))
        if table == "akubela":
            variable = part.pop("manager_password_env", None)
            if variable is not None:
                if str(variable) not in os.environ:
                    raise Refused(f"{where}: the environment has no {variable}")
                changes["manager_password"] = os.environ[str(variable)]
            if "manager_password" in part:
                raise Refused(
                    f"{where}: keep the manager's password out of the file; name the "
                    "environment variable that holds it with manager_password_env"
                )
        for key, value in part.items():
            if key not in names:
                raise Refused(f"{where}: unknown setting {table}.{key}")
            changes[names[key]] = value
    amenities = dict(entry.pop("amenities", {}))
    if "defaults" in amenities:
        changes["amenity_defaults"] = amenities.pop("defaults")
    if amenities:
        changes["amenity_rules"] = amenities
    changes.update(entry)
    return community_id, changes


# ---- the commands ----------------------------------------------------------------------------


def _rules_option(text: str) -> dict[str, int]:
    """`grid=60,min=60,max=120,horizon=14` (any of them) as amenity rule values."""
    names = {
        "grid": "grid_minutes",
        "min": "min_minutes",
        "max": "max_minutes",
        "horizon": "horizon_days",
    }
    values: dict[str, int] = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        if key.strip() not in names or not value.strip().isdigit():
            raise argparse.ArgumentTypeError(
                f"{part!r}: write rules as grid=60,min=60,max=120,horizon=14"
            )
        values[names[key.strip()]] = int(value)
    return values


def _amenity_option(text: str) -> tuple[str, dict[str, int]]:
    amenity_id, _, rules = text.partition(":")
    if not amenity_id or not rules:
        raise argparse.ArgumentTypeError(
            f"{text!r}: write AMENITY_ID:grid=60,min=60,max=120,horizon=14"
        )
    return amenity_id, _rules_option(rules)


def add_options(parser: argparse.ArgumentParser) -> None:
    """The values `add` and `edit` take; an option left out keeps the value."""
    for name in TEXT_FIELDS:
        parser.add_argument("--" + name.replace("_", "-"), dest=name)
    parser.add_argument("--languages", help="e.g. en,zh")
    parser.add_argument("--service-hours", help="e.g. 08:00-20:00")
    parser.add_argument("--escalate-repair-minutes", type=int)
    parser.add_argument("--escalate-task-minutes", type=int)
    parser.add_argument(
        "--manager-password-env",
        help="the environment variable holding the manager's password (never on the line)",
    )
    parser.add_argument("--default-rules", type=_rules_option, help="grid=30,min=30,...")
    parser.add_argument(
        "--amenity",
        type=_amenity_option,
        action="append",
        default=[],
        help="AMENITY_ID:grid=60,min=60,max=120,horizon=14 (repeatable)",
    )


def changes_from_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options given, as flat changes."""
    changes: dict[str, Any] = {
        name: getattr(args, name) for name in TEXT_FIELDS if getattr(args, name) is not None
    }
    if args.languages is not None:
        changes["languages"] = args.languages
    if args.service_hours is not None:
        start, _, end = args.service_hours.partition("-")
        changes["service_hours_start"], changes["service_hours_end"] = start, end
    for name in ("escalate_repair_minutes", "escalate_task_minutes"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.manager_password_env is not None:
        if args.manager_password_env not in os.environ:
            raise Refused(f"the environment has no {args.manager_password_env}")
        changes["manager_password"] = os.environ[args.manager_password_env]
    if args.default_rules is not None:
        changes["amenity_defaults"] = args.default_rules
    if args.amenity:
        changes["amenity_rules"] = dict(args.amenity)
    return changes


async def _save(
    storage: Storage, cipher: TokenCipher, accesses: Sequence[CommunityAccess]
) -> None:
    """Checks every community against the rest, then keeps them all or none."""
    kept = {a.community.id: a for a in await stored_communities(storage, cipher)}
    kept.update({a.community.id: a for a in accesses})
    found: list[str] = []
    for access in accesses:
        others = [a for a in kept.values() if a.community.id != access.community.id]
        found += [f"community {access.community.id}: {p}" for p in problems(access, others)]
    if found:
        raise Refused("\n".join(found))
    for access in accesses:
        await storage.communities.save(access.community.id, stored_values(access, cipher))


async def _run(settings: Settings, args: argparse.Namespace) -> list[str]:
    await upgrade(settings.database_url)
    storage = Storage.open(settings.database_url)
    cipher = TokenCipher(settings.secret_key)
    try:
        stored = {a.community.id: a for a in await stored_communities(storage, cipher)}
        action = args.action
        if action == "list":
            return [
                f"{c.id}  {c.name_en} / {c.name_zh}  {c.time_zone}  {c.akubela_project_id}"
                for c in (a.community for a in stored.values())
            ] or ["No communities yet (concierge migrate makes community 1 from the settings)."]
        if action == "show":
            if args.id not in stored:
                raise Refused(f"there is no community {args.id}")
            return describe(stored[args.id])
        if action == "add":
            community_id = args.id or max(stored, default=0) + 1
            if community_id in stored:
                raise Refused(f"community {community_id} exists already; change it with edit")
            access = apply(new_community(settings, community_id), changes_from_options(args))
            await _save(storage, cipher, [access])
            return [f"Community {community_id} added."]
        if action == "edit":
            if args.id not in stored:
                raise Refused(f"there is no community {args.id}; add it first")
            access = apply(stored[args.id], changes_from_options(args))
            await _save(storage, cipher, [access])
            return [f"Community {args.id} changed."]
        return await _import(settings, storage, cipher, stored, Path(args.file), args.text)
    finally:
        await storage.close()


async def _import(
    settings: Settings,
    storage: Storage,
    cipher: TokenCipher,
    stored: Mapping[int, CommunityAccess],
    path: Path,
    text: str,
) -> list[str]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise Refused(f"{path} is not valid TOML: {exc}") from None
    entries = data.get("community", [])
    if not isinstance(entries, list) or not entries:
        raise Refused(f"{path} has no [[community]] tables")
    accesses: list[CommunityAccess] = []
    report: list[str] = []
    seen: set[int] = set()
    for number, entry in enumerate(entries, start=1):
        community_id, changes = changes_from_toml(entry, f"{path.name}, community #{number}")
        if community_id in seen:
            raise Refused(f"{path.name}: community {community_id} is in the file twice")
        seen.add(community_id)
        base = stored.get(community_id) or new_community(settings, community_id)
        accesses.append(apply(base, changes))
        report.append(
            f"Community {community_id} " + ("updated." if community_id in stored else "added.")
        )
    await _save(storage, cipher, accesses)
    return report


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise Refused(f"{path} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise Refused(f"{path} is not UTF-8 text") from None


def command(settings: Settings, args: argparse.Namespace) -> int:
    """Runs one `concierge community` command; 2 when it was refused."""
    try:
        if args.action == "import":
            args.text = _read(Path(args.file))
        lines = asyncio.run(_run(settings, args))
    except Refused as exc:
        print("Nothing was changed:", file=sys.stderr)
        for line in str(exc).splitlines():
            print(f"- {line}", file=sys.stderr)
        return 2
    except TokenDecryptError:
        print(
            "A community's manager password cannot be read: SECRET_KEY is not the one it was "
            "saved with.",
            file=sys.stderr,
        )
        return 2
    for line in lines:
        print(line)
    return 0


def add_parser(commands: Any) -> None:
    """Adds `community` and its actions to the `concierge` command line."""
    community = commands.add_parser("community", help="add, change and list the communities")
    actions = community.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every community")
    show = actions.add_parser("show", help="one community (never its secrets)")
    show.add_argument("id", type=int)
    add = actions.add_parser("add", help="a new community")
    add.add_argument("--id", type=int, help="its number (default: the next free one)")
    add_options(add)
    edit = actions.add_parser("edit", help="change a community (only the options given)")
    edit.add_argument("id", type=int)
    add_options(edit)
    load = actions.add_parser("import", help="add or update communities from a TOML file")
    load.add_argument("file", help="e.g. communities.toml")
    community.set_defaults(handler=command)
