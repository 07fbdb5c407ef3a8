"""An auth directory: the book, the credentials files, the server configuration, TLS files.

``hivebus auth init DIR`` makes one; ``auth add`` and ``auth revoke`` change the book and
rewrite the server configuration (and ask a running embedded server to reload it).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Iterable
from pathlib import Path

from .credentials import new_seed, public_key, write
from .principals import (
    NAME_PATTERN,
    Book,
    Kind,
    Permission,
    Principal,
    Revoked,
    load_book,
    save_book,
    write_private,
)
from .server_config import TlsFiles, render

__all__ = ["AuthDir", "AuthError"]


class AuthError(ValueError):
    """A mistake by the person running ``hivebus auth``: one clear line, no traceback."""


class AuthDir:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.book_path = self.root / "principals.json"
        self.server_conf = self.root / "server.conf"
        self.pid_file = self.root / "nats-server.pid"
        self.creds_dir = self.root / "creds"
        self.core_creds = self.root / "core.creds"
        self.tls = TlsFiles(self.root / "tls")
        self.audit_file = self.root / "audit" / "audit.jsonl"

    def exists(self) -> bool:
        return self.book_path.is_file()

    def book(self) -> Book:
        if not self.exists():
            raise AuthError(f"{self.root} is not an auth directory: run `hivebus auth init`")
        return load_book(self.book_path)

    def creds_path(self, name: str) -> Path:
        return self.creds_dir / f"{name}.creds"

    def init(self, *, prefix: str = "", tls: bool = False) -> Principal:
        if self.exists():
            raise AuthError(f"{self.root} is already an auth directory")
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        seed = new_seed()
        core = Principal(name="hivebus-core", kind=Kind.CORE, public_key=public_key(seed))
        if tls:
            from .tls import make_ca_and_server_cert

            make_ca_and_server_cert(self.tls)
        write(self.core_creds, core.name, Kind.CORE, seed, self.tls.ca if tls else None)
        self._store(Book(prefix=prefix, tls=tls, principals=[core]))
        return core

    def add(
        self,
        kind: Kind,
        name: str,
        *,
        can: Iterable[Permission] = (),
        capabilities: Iterable[str] = (),
        role: str | None = None,
    ) -> Path:
        if kind is Kind.CORE:
            raise AuthError("the core's credentials are made by `hivebus auth init`")
        if not re.fullmatch(NAME_PATTERN, name):
            raise AuthError(f"name {name!r}: letters, digits, '-' and '_' only, 1 to 128")
        book = self.book()
        if book.get(name) is not None:
            raise AuthError(f"a principal named {name!r} exists; revoke it first")
        seed = new_seed()
        principal = Principal(
            name=name,
            kind=kind,
            public_key=public_key(seed),
            can=frozenset(can),
            capabilities=tuple(capabilities),
            role=role,
        )
        path = self.creds_path(name)
        write(path, name, kind, seed, self.tls.ca if book.tls else None)
        book.principals.append(principal)
        self._store(book)
        return path

    def revoke(self, name: str) -> Principal:
        book = self.book()
        principal = book.get(name)
        if principal is None or principal.kind is Kind.CORE:
            raise AuthError(f"no principal named {name!r}")
        book.principals.remove(principal)
        book.revoked.append(
            Revoked(
                name=name,
                kind=principal.kind,
                public_key=principal.public_key,
                revoked_at=time.time(),
            )
        )
        self._store(book)
        self.creds_path(name).unlink(missing_ok=True)
        return principal

    def _store(self, book: Book) -> None:
        save_book(self.book_path, book)
        write_private(self.server_conf, render(book, self.tls if book.tls else None).encode())

    def reload_server(self) -> bool:
        """Ask the embedded server started with ``hivebus up --auth`` to reread its
        configuration (SIGHUP); ``False`` when none runs from this directory."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGHUP)
            return True
        return False
