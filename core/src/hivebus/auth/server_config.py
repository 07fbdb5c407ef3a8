"""The nats-server configuration of a secure bus, generated from the book.

Two accounts (docs/security.md says why, with the measurements):

- ``CORE`` holds the core alone. Its request subjects are exported as services; ``HIVE``
  imports them with ``share: true``, so the server stamps every request crossing over with a
  ``Nats-Request-Info`` header naming the account and the authenticated user (the nkey), and
  replaces any such header the sender wrote. Events, cancel notices and control messages are
  exported as streams. JetStream (state buckets, the audit stream) is enabled for ``CORE``
  only: nobody else can reach ``$JS.API`` or ``$KV.hivebus_*``.
- ``HIVE`` holds agents, clients, monitors and admins, each confined by subject permissions:
  an agent subscribes only to ``agent.<id>.>`` and its own inbox, and answers offers through
  ``allow_responses``; nobody but monitors and admins subscribes to ``>``; nobody publishes
  offers, notices or events. Offers (``agent.*.assign``) are a service ``HIVE`` exports to
  ``CORE``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..subjects import Subjects
from .credentials import inbox_prefix
from .principals import Book, Kind, Permission, Principal

__all__ = ["CORE_ACCOUNT", "HIVE_ACCOUNT", "TlsFiles", "render", "request_subjects"]

CORE_ACCOUNT = "CORE"
HIVE_ACCOUNT = "HIVE"


class TlsFiles:
    def __init__(self, directory: Path) -> None:
        self.ca = directory / "ca.pem"
        self.cert = directory / "server-cert.pem"
        self.key = directory / "server-key.pem"


def request_subjects(s: Subjects) -> list[str]:
    """What the core serves, as exported services (``task.>`` covers task subjects to come)."""
    return [s.register, s.heartbeat, s.deregister, s._("task.>"), s._("orchestrator.>"),
            s._("plugin.>")]  # fmt: skip


UPDATES_DEPTH = 4
"""Task ids with up to this many dots can be followed on a secure bus: NATS has no wildcard
for "any number of tokens, then ``updates``", so each depth is a subject of its own."""


def updates_subjects(s: Subjects) -> list[str]:
    """``task.<task_id>.updates`` for task ids of one to ``UPDATES_DEPTH + 1`` tokens."""
    return [s.task_updates(".".join(["*"] * (dots + 1))) for dots in range(UPDATES_DEPTH + 1)]


def _streams(s: Subjects) -> list[str]:
    return [s.all_events, s.withdraw("*"), s.control("*"), *updates_subjects(s)]


def _q(value: str) -> str:
    return json.dumps(value)


def _list(values: Iterable[str]) -> str:
    return "[" + ", ".join(_q(v) for v in values) + "]"


def permissions(principal: Principal, s: Subjects) -> dict[str, Any]:
    """Subject permissions of one principal in ``HIVE``.

    Every principal may publish to the core's request subjects: the core decides what each
    may ask (and audits refusals). The server keeps what the core cannot see: who subscribes
    to what, and that nobody but the core publishes offers, notices and events.
    """
    inbox = inbox_prefix(principal.name) + ".>"
    core_only = [s.all_events, s.assign("*"), s.withdraw("*"), s.control("*")]
    core_only += updates_subjects(s)  # inside task.>, which everyone may publish to
    if principal.kind is Kind.ADMIN:
        return {
            "publish": {"allow": [">"], "deny": core_only},
            "subscribe": {"allow": [">"]},
        }
    publish = {"allow": request_subjects(s), "deny": core_only}
    if principal.kind is Kind.MONITOR:
        return {"publish": publish, "subscribe": {"allow": [">"]}}
    if principal.kind is Kind.AGENT:
        mine = s._(f"agent.{principal.name}.>")
        subscribe = [mine, inbox]
        if principal.may(Permission.READ):
            subscribe += [s.event("task.>"), s.event("agent.>"), *updates_subjects(s)]
        return {"publish": publish, "subscribe": {"allow": subscribe}, "allow_responses": True}
    subscribe = [inbox]
    if principal.may(Permission.READ):
        subscribe += [s.event("task.>"), s.event("agent.>"), *updates_subjects(s)]
    return {"publish": publish, "subscribe": {"allow": subscribe}}


def _perm_text(perms: dict[str, Any]) -> str:
    parts = []
    for direction in ("publish", "subscribe"):
        rules = perms[direction]
        inner = ", ".join(f"{k}: {_list(v)}" for k, v in rules.items())
        parts.append(f"{direction}: {{{inner}}}")
    if perms.get("allow_responses"):
        parts.append("allow_responses: true")
    return "{" + ", ".join(parts) + "}"


def render(book: Book, tls: TlsFiles | None = None) -> str:
    s = Subjects(book.prefix)
    core = book.core()
    exports = [f"{{service: {_q(x)}, accounts: [{HIVE_ACCOUNT}]}}" for x in request_subjects(s)]
    exports += [f"{{stream: {_q(x)}, accounts: [{HIVE_ACCOUNT}]}}" for x in _streams(s)]
    hive_imports = [
        f"{{service: {{account: {CORE_ACCOUNT}, subject: {_q(x)}}}, share: true}}"
        for x in request_subjects(s)
    ]
    hive_imports += [
        f"{{stream: {{account: {CORE_ACCOUNT}, subject: {_q(x)}}}}}" for x in _streams(s)
    ]
    users = [
        f"      {{nkey: {_q(p.public_key)}, permissions: {_perm_text(permissions(p, s))}}}"
        f"  # {p.kind.value} {p.name}"
        for p in book.principals
        if p.kind is not Kind.CORE
    ]
    # An account without users is valid, but the server wants the list present.
    lines = [
        "# Generated by `hivebus auth` from principals.json: edit with `hivebus auth add|revoke`,",
        "# not by hand (the next change rewrites this file).",
        "accounts {",
        f"  {CORE_ACCOUNT} {{",
        "    jetstream: enabled",
        f"    users: [{{nkey: {_q(core.public_key)}}}]  # the hivebus core",
        "    exports: [",
        *(f"      {e}" for e in exports),
        "    ]",
        f"    imports: [{{service: {{account: {HIVE_ACCOUNT}, subject: {_q(s.assign('*'))}}}}}]",
        "  }",
        f"  {HIVE_ACCOUNT} {{",
        "    users: [",
        *users,
        "    ]",
        f"    exports: [{{service: {_q(s.assign('*'))}, accounts: [{CORE_ACCOUNT}]}}]",
        "    imports: [",
        *(f"      {i}" for i in hive_imports),
        "    ]",
        "  }",
        "}",
    ]
    if tls is not None:
        lines += [
            "tls {",
            f"  cert_file: {_q(str(tls.cert))}",
            f"  key_file: {_q(str(tls.key))}",
            f"  ca_file: {_q(str(tls.ca))}",
            "  timeout: 2",
            "}",
        ]
    return "\n".join(lines) + "\n"
