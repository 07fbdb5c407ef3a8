"""Agents: registration (with the ``max_agents`` seats shared by replicas), heartbeats,
deregistration, going offline, and forgetting agents offline for long.

An agent that leaves hands its tasks back through ``transitions``; a new agent is fed the
waiting work it can serve through ``placement``.
"""

from __future__ import annotations

from hivebus_hookspecs.models import (
    AgentState,
    DeregisterReply,
    DeregisterRequest,
    ErrorCode,
    EventName,
    HeartbeatRequest,
    RegisterRequest,
)

from ..errors import HivebusError
from .cas import Contended, delete_agent, update_agent
from .kernel import Kernel, known_agent, log
from .placement import Placement
from .ports import Conflict
from .registry import AgentRecord
from .transitions import Transitions

__all__ = ["Agents"]


class Agents:
    def __init__(self, kernel: Kernel, placement: Placement, transitions: Transitions) -> None:
        self._k = kernel
        self._placement = placement
        self._transitions = transitions

    async def register(self, req: RegisterRequest) -> AgentRecord:
        k = self._k
        existing = k.registry.get(req.agent_id)
        if (
            existing is not None
            and existing.state is AgentState.ACTIVE
            and req.instance_id is not None
            and existing.instance_id == req.instance_id
        ):
            k.cache.seen[req.agent_id] = k.monotonic()  # the same run, saying hello again
            return existing
        self._check_can_register(req.agent_id)
        if req.max_tasks > k.config.max_tasks_per_agent:
            raise HivebusError(
                ErrorCode.INVALID_REQUEST,
                f"max_tasks: {req.max_tasks} is more than this core's "
                f"max_tasks_per_agent={k.config.max_tasks_per_agent}",
            )
        k.check_metadata(req.metadata)
        caps = tuple(dict.fromkeys(req.capabilities))
        applicant = AgentRecord(
            agent_id=req.agent_id,
            role=req.role,
            capabilities=caps,
            max_tasks=req.max_tasks,
            metadata=dict(req.metadata),
            registered_at=k.clock(),
            instance_id=req.instance_id,
        )
        k.cache.registering.add(req.agent_id)
        try:
            agent = await self._store_registration(applicant)
        finally:
            k.cache.registering.discard(req.agent_id)
        k.cache.seen[agent.agent_id] = k.monotonic()
        log.info("agent registered", extra={"agent_id": agent.agent_id, "role": agent.role.value})
        k.emit(
            EventName.AGENT_REGISTERED,
            agent_id=agent.agent_id,
            role=agent.role.value,
            capabilities=list(caps),
            max_tasks=agent.max_tasks,
        )
        if k.hooks.wants("hivebus_agent_registered"):
            k.hooks.notify("hivebus_agent_registered", agent=k.view_later(agent))
        if len(k.queue):
            k.spawn(self._placement.feed(agent.agent_id), name=f"hivebus-feed-{agent.agent_id}")
        return agent

    async def _store_registration(self, applicant: AgentRecord) -> AgentRecord:
        k = self._k
        if k.hooks.wants("hivebus_agent_register"):
            await k.hooks.check_agent(applicant.view())
        agent_id = applicant.agent_id
        if not await k.state.claim_seat(agent_id):
            raise self._max_agents_reached()

        def renew(previous: AgentRecord | None) -> AgentRecord:
            self._check_not_active(agent_id)  # the world may have moved while we waited
            return applicant.evolve(
                registered_at=k.clock(),
                revision=previous.revision if previous is not None else 0,
                # out of rotation stays out, whatever the agent does, until released
                quarantined_by=previous.quarantined_by if previous is not None else None,
                quarantine_reason=previous.quarantine_reason if previous is not None else None,
                on_trial=previous.on_trial if previous is not None else False,
                sleeping=previous.sleeping if previous is not None else False,
            )

        try:
            try:
                _, agent = await update_agent(k.cache, agent_id, renew)
            except Contended:
                raise HivebusError(
                    ErrorCode.AGENT_EXISTS, f"agent {agent_id!r} is contended"
                ) from None
            return agent
        except BaseException:
            if not k.is_active(agent_id):  # else the seat is the active registration's
                await k.state.release_seat(agent_id)
            raise

    def _check_not_active(self, agent_id: str) -> None:
        if self._k.is_active(agent_id):
            raise HivebusError(ErrorCode.AGENT_EXISTS, f"agent {agent_id!r} is already registered")

    def _max_agents_reached(self) -> HivebusError:
        return HivebusError(
            ErrorCode.MAX_AGENTS_REACHED,
            f"the orchestrator already has max_agents={self._k.config.max_agents} agents",
        )

    def _check_can_register(self, agent_id: str) -> None:
        """Refuse early what this replica knows would fail; the seat decides for the bus."""
        cache = self._k.cache
        self._check_not_active(agent_id)
        # Registrations of other agents on their way to the store count as well.
        arriving = len(cache.registering) - (agent_id in cache.registering)
        if cache.registry.count_active() + arriving >= self._k.config.max_agents:
            raise self._max_agents_reached()

    def heartbeat(self, req: HeartbeatRequest) -> None:
        cache = self._k.cache
        agent = self._live_agent(req.agent_id)
        cache.seen[agent.agent_id] = self._k.monotonic()
        if req.context_window_usage is not None:
            cache.context[agent.agent_id] = req.context_window_usage

    def _live_agent(self, agent_id: str) -> AgentRecord:
        agent = self._k.registry.get(agent_id)
        if agent is None or agent.state is not AgentState.ACTIVE:
            raise HivebusError(ErrorCode.UNKNOWN_AGENT, f"no registered agent {agent_id!r}")
        return agent

    async def deregister(self, req: DeregisterRequest) -> DeregisterReply:
        k = self._k

        def known(agent: AgentRecord | None) -> AgentRecord:
            return known_agent(agent, req.agent_id)

        try:
            agent = await delete_agent(k.cache, req.agent_id, known)
        except Contended:
            raise HivebusError(
                ErrorCode.UNAVAILABLE, f"agent {req.agent_id!r} is busy changing; try again"
            ) from None
        if agent.state is AgentState.ACTIVE:
            await k.state.release_seat(agent.agent_id)
        requeued = await self._transitions.take_back(
            agent, reason=f"agent {agent.agent_id} deregistered"
        )
        if agent.state is AgentState.ACTIVE:
            log.info("agent deregistered", extra={"agent_id": agent.agent_id})
            k.emit(EventName.AGENT_DEREGISTERED, agent_id=agent.agent_id, requeued=requeued)
            if k.hooks.wants("hivebus_agent_removed"):
                k.hooks.notify(
                    "hivebus_agent_removed", agent=k.view_later(agent), reason="deregistered"
                )
        return DeregisterReply(requeued=requeued)

    async def mark_offline(self, agent_id: str) -> list[str]:
        """The agent went silent: stop offering to it and give its tasks to others.

        Several replicas may notice at once; the compare-and-set lets exactly one act (a
        single write, not retried: the loser re-reads and leaves the rest to the winner).
        """
        k = self._k
        agent = k.registry.get(agent_id)
        if agent is None or agent.state is not AgentState.ACTIVE:
            return []
        try:
            await k.cache.save_agent(agent.evolve(state=AgentState.OFFLINE, offline_at=k.clock()))
        except Conflict:
            await k.cache.refresh_agent(agent_id)
            return []
        await k.state.release_seat(agent_id)
        requeued = await self._transitions.take_back(agent, reason=f"agent {agent_id} went offline")
        log.warning("agent offline", extra={"agent_id": agent_id, "requeued": requeued})
        k.emit(EventName.AGENT_OFFLINE, agent_id=agent_id, requeued=requeued)
        if k.hooks.wants("hivebus_agent_removed"):
            k.hooks.notify("hivebus_agent_removed", agent=k.view_later(agent), reason="offline")
        return requeued

    async def prune_offline(self) -> list[str]:
        """Delete the records of agents offline longer than ``agent_retention_s``, and the
        oldest ones past ``max_agents`` of them, so silent agents cannot pile up forever."""
        k = self._k
        offline = sorted(
            (a for a in k.registry if a.state is AgentState.OFFLINE),
            key=lambda a: a.offline_at or a.registered_at,
        )
        excess = len(offline) - k.config.max_agents
        cutoff = k.clock() - k.config.agent_retention_s
        pruned = []
        for index, agent in enumerate(offline):
            if index >= excess and (agent.offline_at or agent.registered_at) > cutoff:
                break
            try:
                await k.cache.delete_agent(agent)
            except Conflict:  # it changed: looked at again at the next pass
                await k.cache.refresh_agent(agent.agent_id)
                continue
            pruned.append(agent.agent_id)
        if pruned:
            log.info("offline agents forgotten", extra={"count": len(pruned)})
        return pruned
