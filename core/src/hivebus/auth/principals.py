"""Who may connect to a secure bus: the principals of an auth directory, as stored.

The book (``principals.json``) holds public keys only; each principal's secret (its nkey seed)
is in its own credentials file, handed to whoever runs it. The core reads the book to map the
public key the NATS server vouches for to a principal and its grants.
"""

from __future__ import annotations

import enum
import os
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "NAME_PATTERN",
    "Book",
    "Kind",
    "Permission",
    "Principal",
    "Revoked",
    "load_book",
    "save_book",
    "write_private",
]

NAME_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
"""A principal's name is a subject token (``agent.<name>.assign``, ``_INBOX.<name>.>``)."""


class Kind(enum.StrEnum):
    CORE = "core"
    AGENT = "agent"
    CLIENT = "client"
    MONITOR = "monitor"
    ADMIN = "admin"


class Permission(enum.StrEnum):
    """What a client may ask of the core beyond its own tasks."""

    DELEGATE = "delegate"
    READ = "read"
    CANCEL = "cancel"
    PLUGINS = "plugins"


class Principal(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    """For an agent, its agent id: the only id it may act as."""
    kind: Kind
    public_key: str
    can: frozenset[Permission] = frozenset()
    capabilities: tuple[str, ...] = ()
    """An agent's granted capabilities; empty grants any."""
    role: str | None = None
    """An agent's granted role; ``None`` grants any."""
    created_at: float = Field(default_factory=time.time)

    def may(self, permission: Permission) -> bool:
        """Admins may do everything a client may; monitors may read."""
        if self.kind is Kind.ADMIN:
            return True
        if self.kind is Kind.MONITOR:
            return permission is Permission.READ
        return permission in self.can


class Revoked(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    kind: Kind
    public_key: str
    revoked_at: float


class Book(BaseModel):
    """The auth directory's record of principals; the server configuration is made from it."""

    model_config = ConfigDict(extra="forbid")

    prefix: str = ""
    tls: bool = False
    principals: list[Principal] = Field(default_factory=list)
    revoked: list[Revoked] = Field(default_factory=list)

    def get(self, name: str) -> Principal | None:
        return next((p for p in self.principals if p.name == name), None)

    def by_key(self) -> dict[str, Principal]:
        return {p.public_key: p for p in self.principals}

    def revoked_by_key(self) -> dict[str, Revoked]:
        return {r.public_key: r for r in self.revoked}

    def core(self) -> Principal:
        found = next((p for p in self.principals if p.kind is Kind.CORE), None)
        if found is None:
            raise ValueError("the auth directory has no core principal: run `hivebus auth init`")
        return found


def load_book(path: Path) -> Book:
    return Book.model_validate_json(path.read_bytes())


def save_book(path: Path, book: Book) -> None:
    """Written whole and renamed into place: a core reading it never sees half a book."""
    write_private(path, book.model_dump_json(indent=2).encode())


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` readable by the owner only, atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
