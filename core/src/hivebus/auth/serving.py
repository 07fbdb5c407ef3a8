"""``hivebus up --auth DIR``: the core's configuration and the embedded server's arguments."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from .directory import AuthDir

if TYPE_CHECKING:
    from ..config import HivebusConfig

__all__ = ["is_loopback", "secure_setup"]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def secure_setup(config: HivebusConfig) -> tuple[HivebusConfig, tuple[str, ...]]:
    """The core's configuration with its own credentials, and the nats-server arguments that
    load the directory's server configuration (and write the pid ``auth add`` signals)."""
    assert config.auth_dir is not None
    directory = AuthDir(config.auth_dir)
    book = directory.book()
    if book.prefix != config.prefix:
        raise ValueError(
            f"the auth directory was made for prefix {book.prefix!r}, the core has "
            f"{config.prefix!r}: they must match"
        )
    update = {"auth_dir": directory.root}
    if config.creds_file is None:
        update["creds_file"] = directory.core_creds
    args = ("-c", str(directory.server_conf), "-P", str(directory.pid_file))
    return config.model_copy(update=update), args
