"""Secure mode: principals and their credentials, the nats-server configuration that lets the
server vouch for every caller, and the core's authorization, rate limits and audit.

Open mode (no ``auth_dir``) uses none of this. docs/security.md explains the layout.

Each name loads its module on first use (PEP 562): an agent or a client that reads its
credentials (``auth.credentials``) never pays for the core's guard and policy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

if TYPE_CHECKING:
    from .directory import AuthDir, AuthError
    from .guard import Admitted, Guard
    from .identity import Identity, identity_from_headers
    from .policy import DELEGATOR_KEY, Policy, PrincipalSource, Refusal
    from .principals import Kind, Permission, Principal

__all__ = [
    "DELEGATOR_KEY",
    "Admitted",
    "AuthDir",
    "AuthError",
    "Guard",
    "Identity",
    "Kind",
    "Permission",
    "Policy",
    "Principal",
    "PrincipalSource",
    "Refusal",
    "identity_from_headers",
]

_LAZY = {
    "DELEGATOR_KEY": ".policy",
    "Admitted": ".guard",
    "AuthDir": ".directory",
    "AuthError": ".directory",
    "Guard": ".guard",
    "Identity": ".identity",
    "Kind": ".principals",
    "Permission": ".principals",
    "Policy": ".policy",
    "Principal": ".principals",
    "PrincipalSource": ".policy",
    "Refusal": ".policy",
    "identity_from_headers": ".identity",
}
"""The module each name lives in."""


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
