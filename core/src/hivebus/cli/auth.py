"""``hivebus auth ...`` (principals and their credentials) and ``hivebus audit`` (the security
audit on the bus, or with ``--lifecycle`` the audit plugin's log on disk)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from .extensions import DEST, Command
from .tables import clock, table

if TYPE_CHECKING:
    from ..auth.directory import AuthDir

__all__ = ["add_auth_commands", "auth_dir_default"]

AddParser = Any


def auth_dir_default() -> str:
    return os.environ.get("HIVEBUS_AUTH_DIR", ".hivebus/auth")


def _dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        dest="auth_dir",
        default=None,
        metavar="DIR",
        help="the auth directory (default: $HIVEBUS_AUTH_DIR or .hivebus/auth)",
    )


def add_auth_commands(commands: Any, nats_option: Any, json_option: Any) -> None:
    """Add ``auth`` and ``audit`` to the ``hivebus`` sub-commands (one call from the CLI)."""
    auth = commands.add_parser("auth", help="secure mode: principals and their credentials")
    auth.set_defaults(**{DEST: Command("auth", "principals", _run_auth, distribution="hivebus")})
    what = auth.add_subparsers(dest="auth_command", required=True, metavar="WHAT")

    init = what.add_parser("init", help="make an auth directory (server config, core creds)")
    init.add_argument("dir", nargs="?", default=None, help="where (default: .hivebus/auth)")
    init.add_argument("--tls", action="store_true", help="also a CA and a server certificate")
    init.add_argument("--prefix", default="", help="the bus's subject prefix, if any")

    add = what.add_parser("add", help="add a principal and write its credentials file")
    add.add_argument(
        "kind",
        choices=["agent", "client", "monitor", "admin"],
        help="what the principal is: an agent acts as one agent id; a client delegates, "
        "reads or cancels as granted; a monitor reads everything; an admin does anything",
    )
    add.add_argument("name", help="for an agent, its agent id")
    add.add_argument(
        "--can",
        default="",
        metavar="PERMS",
        help="comma-separated: delegate, read, cancel, plugins (clients, agents)",
    )
    add.add_argument("--cap", action="append", default=[], help="an agent's granted capability")
    add.add_argument("--role", default=None, help="an agent's granted role")
    _dir_option(add)

    revoke = what.add_parser("revoke", help="remove a principal; its credentials stop working")
    revoke.add_argument("name", help="the principal to remove (as auth list shows it)")
    _dir_option(revoke)

    listing = what.add_parser("list", help="the principals")
    _dir_option(listing)
    json_option(listing)

    audit = commands.add_parser("audit", help="secure mode: denials and state changes")
    audit.set_defaults(**{DEST: Command("audit", "audit", _run_audit, distribution="hivebus")})
    nats_option(audit)
    json_option(audit)
    audit.add_argument("--follow", action="store_true", help="then keep printing new records")
    audit.add_argument("--principal", default=None, help="only this principal's records")
    audit.add_argument("--denied", action="store_true", help="only refusals")
    audit.add_argument(
        "--limit", type=int, default=50, help="how many past records (50, at most 1000; 0: none)"
    )
    lifecycle = audit.add_argument_group(
        "lifecycle log",
        "the audit plugin's log of lifecycle events, read from disk (docs/audit.md)",
    )
    lifecycle.add_argument(
        "--lifecycle", action="store_true", help="read the lifecycle log, not the security audit"
    )
    lifecycle.add_argument("--task", default=None, metavar="ID", help="only this task's events")
    lifecycle.add_argument("--agent", default=None, metavar="ID", help="only this agent's events")
    lifecycle.add_argument(
        "--data-dir", default=None, metavar="DIR", help="the core's data directory (data_dir)"
    )


def _fail(message: str) -> int:
    print(f"hivebus: {message}", file=sys.stderr)
    return 2


def _run_auth(args: argparse.Namespace) -> int:
    from ..auth.directory import AuthDir, AuthError  # late: `hivebus --help` stays instant

    chosen = getattr(args, "dir", None) or getattr(args, "auth_dir", None)
    directory = AuthDir(Path(chosen or auth_dir_default()))
    try:
        if args.auth_command == "init":
            directory.init(prefix=args.prefix, tls=args.tls)
            print(f"hivebus: auth directory {directory.root} made")
            print(f"  server configuration: {directory.server_conf}")
            print(f"  core credentials:     {directory.core_creds}")
            print(f"  run a secure bus:     hivebus up --auth {directory.root}")
            return 0
        if args.auth_command == "add":
            return _add(directory, args)
        if args.auth_command == "revoke":
            principal = directory.revoke(args.name)
            reloaded = directory.reload_server()
            print(f"hivebus: {principal.kind.value} {principal.name} revoked" + _reload(reloaded))
            return 0
        return _list(directory, args)
    except AuthError as exc:
        return _fail(str(exc))


def _reload(reloaded: bool) -> str:
    if reloaded:
        return "; the running server reloaded its configuration"
    return "; restart or reload (nats-server --signal reload) a server using it"


def _add(directory: AuthDir, args: argparse.Namespace) -> int:
    from ..auth.principals import Kind, Permission

    kind = Kind(args.kind)
    try:
        can = [Permission(p.strip()) for p in args.can.split(",") if p.strip()]
    except ValueError:
        return _fail(f"--can {args.can!r}: choose from delegate, read, cancel, plugins")
    if (args.cap or args.role) and kind is not Kind.AGENT:
        return _fail("--cap and --role are granted to agents only")
    if can and kind not in (Kind.CLIENT, Kind.AGENT):
        return _fail(f"--can is for clients and agents; a {kind.value} has fixed rights")
    path = directory.add(kind, args.name, can=can, capabilities=args.cap, role=args.role)
    reloaded = directory.reload_server()
    print(f"hivebus: {kind.value} {args.name} added; credentials in {path}" + _reload(reloaded))
    return 0


def _list(directory: AuthDir, args: argparse.Namespace) -> int:
    book = directory.book()
    if args.json:
        data = book.model_dump(mode="json")
        print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        return 0
    rows = [
        [
            p.name,
            p.kind.value,
            ",".join(sorted(p.can)) or "-",
            ",".join(p.capabilities) or "-",
            p.role or "-",
            p.public_key[:12] + "...",
        ]
        for p in book.principals
    ]
    print(table(["name", "kind", "can", "capabilities", "role", "nkey"], rows))
    if book.revoked:
        print(f"revoked: {', '.join(r.name for r in book.revoked)}")
    return 0


async def _run_audit(args: argparse.Namespace) -> int:
    from hivebus_hookspecs.models import AuditReply, AuditRequest, SecurityEvent

    if args.lifecycle or args.task is not None or args.agent is not None:
        from .lifecycle_log import run_lifecycle

        return await run_lifecycle(args)
    from ..auth.audit import matches
    from ..config import HivebusConfig
    from ..connection import connect
    from ..sdk.request import call
    from ..subjects import Subjects
    from .shutdown import stop_requested

    config = HivebusConfig.load(args.config, nats_url=args.nats, creds_file=args.creds)
    subjects = Subjects(config.prefix)
    nc = await connect(config, "hivebus-audit")
    try:
        if args.limit > 0:
            limit = min(args.limit, 1000)
            request = AuditRequest(principal=args.principal, denied=args.denied, limit=limit)
            reply = AuditReply.model_validate(
                await call(nc, subjects.audit, request, config.request_timeout_s)
            )
            for event in reversed(reply.records):
                _show(event, args.json)
        if not args.follow:
            return 0
        done = stop_requested()
        wanted = AuditRequest(principal=args.principal, denied=args.denied)

        async def live(msg: Any) -> None:
            try:
                event = SecurityEvent.model_validate_json(msg.data)
            except ValueError:
                return
            if matches(event, wanted):
                _show(event, args.json)

        await nc.subscribe(subjects.event("security.>"), cb=live)
        await nc.flush()
        print("# following the audit; Ctrl-C to stop", file=sys.stderr, flush=True)
        await done.wait()
        return 0
    finally:
        await nc.close()


def _show(event: Any, as_json: bool) -> None:
    if as_json:
        print(orjson.dumps(event.model_dump(mode="json")).decode(), flush=True)
        return
    who = event.principal or "?"
    parts = [clock(event.timestamp), f"{event.decision.value:<15}", f"{who:<16}", event.operation]
    if event.agent_id:
        parts.append(f"agent={event.agent_id}")
    if event.task_id:
        parts.append(f"task={event.task_id}")
    if event.outcome and event.outcome != "ok":
        parts.append(f"outcome={event.outcome}")
    if event.reason:
        parts.append(f"reason={event.reason!r}")
    print(" ".join(parts), flush=True)
