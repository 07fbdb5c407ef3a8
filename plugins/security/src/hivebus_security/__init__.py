"""An agent and task policy for hivebus: vetoes registrations and delegations that break it.

The entry point names the module-level ``plugin`` instance; its policy is read from
``[plugin_config.security]`` at ``hivebus_startup``.
"""

from .plugin import NAME, SecurityPlugin
from .policy import Policy

__all__ = ["NAME", "Policy", "SecurityPlugin", "plugin"]

plugin = SecurityPlugin()
"""What the ``hivebus`` entry point ``security`` loads."""
