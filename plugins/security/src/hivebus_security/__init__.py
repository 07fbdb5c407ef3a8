"""An agent and task policy for hivebus: vetoes registrations and delegations that break it.

The entry point names the ``SecurityPlugin`` class: each core builds its own instance, whose
policy is read from ``[plugin_config.security]`` at ``hivebus_startup``.
"""

from .plugin import NAME, SecurityPlugin
from .policy import Policy

__all__ = ["NAME", "Policy", "SecurityPlugin"]
