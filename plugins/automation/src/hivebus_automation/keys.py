"""Keys in the plugin's bucket: valid for any agent id, and never two ids on one key."""

from __future__ import annotations

import hashlib
import re

__all__ = ["BREAKER", "SLEEP", "key_for"]

BREAKER = "breaker"
SLEEP = "sleep"


def key_for(prefix: str, agent_id: str) -> str:
    """``<prefix>.<readable id>.<short hash>``: the hash keeps ids that differ only in
    characters a key may not hold apart."""
    readable = re.sub(r"[^-\w]", "_", agent_id)[:64]
    digest = hashlib.sha1(agent_id.encode(), usedforsecurity=False).hexdigest()[:10]
    return f"{prefix}.{readable}.{digest}"
