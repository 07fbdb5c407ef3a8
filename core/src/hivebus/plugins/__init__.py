"""The plugin host: pluggy for specs, registration and discovery; isolation added on top.

``PluginHost`` is the one class the rest of the core uses. Beside it: ``loading`` (entry
points, fresh instances, refusals), ``checks`` (what loading checks), ``calls`` (each
implementation called on its own, vetoes, amendments, selection), ``notifications`` (the queue
drained off the request path) and ``records`` (failures, vetoes and health per plugin).
"""

from .checks import REQUIRES_ATTRIBUTE
from .host import EventSink, PluginHost
from .loading import ENTRY_POINT_GROUP

__all__ = ["ENTRY_POINT_GROUP", "REQUIRES_ATTRIBUTE", "EventSink", "PluginHost"]
