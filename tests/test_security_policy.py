"""The authorization policy on its own: NATS-free, decided from an identity and a few fields."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from hivebus.auth import AuthDir, Kind, Permission, Policy, PrincipalSource, Refusal
from hivebus.auth.identity import Identity, identity_from_headers
from hivebus.auth.limits import RateLimiter
from hivebus.auth.policy import Ask, TaskFacts
from hivebus_hookspecs.models import Decision, ErrorCode


@pytest.fixture
def directory(tmp_path: Path) -> AuthDir:
    directory = AuthDir(tmp_path / "auth")
    directory.init()
    directory.add(Kind.AGENT, "a1", capabilities=["python"])
    directory.add(Kind.CLIENT, "c1", can=[Permission.DELEGATE])
    directory.add(Kind.CLIENT, "p1", can=[Permission.PLUGINS])
    directory.add(Kind.MONITOR, "m1")
    directory.add(Kind.ADMIN, "root")
    return directory


@pytest.fixture
def policy(directory: AuthDir) -> Policy:
    return Policy(PrincipalSource(directory.book_path), rates={}, burst_s=1.0, max_live_tasks=2)


def who(directory: AuthDir, policy: Policy, name: str):  # type: ignore[no-untyped-def]
    principal = directory.book().get(name)
    assert principal is not None
    return policy.authenticate(Identity("HIVE", principal.public_key))


def refused(policy: Policy, principal, ask: Ask, task: TaskFacts | None = None) -> Refusal:  # type: ignore[no-untyped-def]
    with pytest.raises(Refusal) as caught:
        policy.authorize(principal, ask, task, lambda name: 0)
    return caught.value


def test_only_the_hive_account_and_known_keys_are_served(directory: AuthDir, policy: Policy):
    key = directory.book().get("a1").public_key  # type: ignore[union-attr]
    for identity in (None, Identity("CORE", key), Identity("HIVE", "U" + "X" * 55)):
        with pytest.raises(Refusal) as caught:
            policy.authenticate(identity)
        assert caught.value.code is ErrorCode.UNAUTHENTICATED
        assert caught.value.decision is Decision.UNAUTHENTICATED
    core_key = directory.book().core().public_key
    with pytest.raises(Refusal):  # the core's own key is no principal of the hive
        policy.authenticate(Identity("HIVE", core_key))


@pytest.mark.parametrize(
    ("name", "operation", "allowed"),
    [
        ("p1", "plugin-audit-recent", True),
        ("c1", "plugin-audit-recent", False),
        ("root", "plugin-audit-recent", True),
        ("root", "agent-deregister", True),
        ("m1", "agent-deregister", False),
        ("m1", "task-delegate", False),
        ("m1", "orchestrator-tasks", True),
        ("m1", "orchestrator-audit", True),
        ("c1", "orchestrator-audit", False),
        ("c1", "orchestrator-status", True),
        ("a1", "orchestrator-plugins", True),
        ("root", "something-new", True),
        ("c1", "something-new", False),
    ],
)
def test_who_may_call_what(
    directory: AuthDir, policy: Policy, name: str, operation: str, allowed: bool
):
    principal = who(directory, policy, name)
    ask = Ask(operation, agent_id="someone")
    if allowed:
        policy.authorize(principal, ask, None, lambda name: 0)
    else:
        assert refused(policy, principal, ask).code is ErrorCode.FORBIDDEN


def test_a_delegator_past_its_cap_is_told_to_slow_down(directory: AuthDir, policy: Policy):
    principal = who(directory, policy, "c1")
    with pytest.raises(Refusal) as caught:
        policy.authorize(principal, Ask("task-delegate"), None, lambda name: 2)
    assert caught.value.code is ErrorCode.RATE_LIMITED


def test_progress_and_retry_follow_the_rules_of_completion_and_cancel(
    directory: AuthDir, policy: Policy
):
    agent = who(directory, policy, "a1")
    mine = TaskFacts(delegator="c1", agent_id="a1")
    policy.authorize(agent, Ask("task-progress", "a1", "t"), mine, lambda name: 0)
    theirs = TaskFacts(delegator="c1", agent_id="a2")
    failed = refused(policy, agent, Ask("task-progress", "a1", "t"), theirs)
    assert failed.code is ErrorCode.NOT_TASK_OWNER
    client = who(directory, policy, "c1")
    policy.authorize(client, Ask("task-retry", task_id="t"), mine, lambda name: 0)
    refused(policy, client, Ask("task-retry", task_id="t"), TaskFacts("other", None))


def test_a_half_written_book_keeps_the_last_good_one(directory: AuthDir, policy: Policy):
    key = directory.book().get("c1").public_key  # type: ignore[union-attr]
    policy.authenticate(Identity("HIVE", key))
    directory.book_path.write_text("{ not json")
    assert policy.authenticate(Identity("HIVE", key)).name == "c1"


def test_the_token_bucket_refills_with_time():
    now = [0.0]
    limiter = RateLimiter(lambda: now[0])
    assert [limiter.allow("x", rate=2.0, burst=2.0) for _ in range(3)] == [True, True, False]
    now[0] += 0.5
    assert limiter.allow("x", rate=2.0, burst=2.0)
    assert not limiter.allow("x", rate=2.0, burst=2.0)
    assert limiter.allow("y", rate=2.0, burst=2.0)  # per principal


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {},
        {"Nats-Request-Info": "not json"},
        {"Nats-Request-Info": "[1, 2]"},
        {"Nats-Request-Info": json.dumps({"acc": "HIVE"})},
        {"Nats-Request-Info": json.dumps({"acc": "HIVE", "user": 7})},
        {"Nats-Request-Info": json.dumps({"acc": "", "user": "U1"})},
    ],
)
def test_no_identity_is_read_from_what_the_server_did_not_stamp(headers: dict[str, str] | None):
    assert identity_from_headers(headers) is None


def test_the_identity_is_account_and_user_only():
    info = {"acc": "HIVE", "user": "UABC", "name": "i-am-someone-else"}
    assert identity_from_headers({"Nats-Request-Info": json.dumps(info)}) == Identity(
        "HIVE", "UABC"
    )


def test_the_audit_file_rotates_and_reads_back_newest_first(tmp_path: Path):
    from hivebus.auth.audit import FileAuditStore
    from hivebus_hookspecs.models import AuditRequest, SecurityEvent

    store = FileAuditStore(tmp_path / "audit.jsonl", max_bytes=600, backups=2)
    for i in range(12):
        event = SecurityEvent(
            event="security.forbidden",
            timestamp=float(i),
            decision=Decision.FORBIDDEN if i % 2 else Decision.ALLOWED,
            operation="task-get",
            principal=f"p{i % 3}",
        )
        store.append(event, event.model_dump_json().encode())
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"
    ]  # fmt: skip
    newest = asyncio.run(store.newest(AuditRequest(limit=3)))
    assert [e.timestamp for e in newest] == [11.0, 10.0, 9.0]
    denied = asyncio.run(store.newest(AuditRequest(denied=True, principal="p1", limit=10)))
    assert denied
    assert all(e.decision is Decision.FORBIDDEN and e.principal == "p1" for e in denied)
    kept = asyncio.run(store.newest(AuditRequest(limit=100)))
    oldest_kept = min(e.timestamp for e in kept)
    assert oldest_kept > 0.0  # the oldest records rotated away
