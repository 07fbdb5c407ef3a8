"""The orchestration domain: no NATS, no pluggy; only the ports in :mod:`.ports`."""

from .memory_state import MemoryState
from .orchestrator import HealthCheck, Orchestrator
from .ports import Conflict, EventPort, HookPort, OfferOutcome, OfferPort, OfferResult, StatePort

__all__ = [
    "Conflict",
    "EventPort",
    "HealthCheck",
    "HookPort",
    "MemoryState",
    "OfferOutcome",
    "OfferPort",
    "OfferResult",
    "Orchestrator",
    "StatePort",
]
