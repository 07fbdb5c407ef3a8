"""Secure mode: principals and their credentials, the nats-server configuration that lets the
server vouch for every caller, and the core's authorization, rate limits and audit.

Open mode (no ``auth_dir``) uses none of this. docs/security.md explains the layout.
"""

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
