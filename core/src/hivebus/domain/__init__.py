"""The orchestration domain: no NATS, no pluggy; only the ports in :mod:`.ports`."""

from .orchestrator import HealthCheck, Orchestrator
from .ports import EventPort, HookPort, OfferOutcome, OfferPort, OfferResult

__all__ = [
    "EventPort",
    "HealthCheck",
    "HookPort",
    "OfferOutcome",
    "OfferPort",
    "OfferResult",
    "Orchestrator",
]
