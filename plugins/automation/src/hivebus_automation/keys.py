"""Keys in the plugin's bucket: valid for any agent id, and never two ids on one key
(``hivebus_hookspecs.bucket_key``)."""

from __future__ import annotations

__all__ = ["BREAKER", "SLEEP"]

BREAKER = "breaker"
SLEEP = "sleep"
