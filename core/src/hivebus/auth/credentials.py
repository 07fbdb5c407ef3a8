"""Credentials files: one nkey seed per principal, with what a client needs to use it.

The file is plain text: ``# key: value`` comment lines, then the seed on a line of its own.
Go's ``nats.NkeyOptionFromSeed`` and the ``nats`` CLI's ``--nkey`` find the seed line among the
comments; nats.js and the Python SDK read the same lines (see docs/security.md). The seed
comes from the operating system's random source and is written readable by the owner only.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from .principals import Kind, write_private

__all__ = ["Credentials", "inbox_prefix", "new_seed", "public_key", "read_credentials", "write"]


def new_seed() -> bytes:
    """A fresh user nkey seed (``SU...``) from 32 bytes of the OS's CSPRNG."""
    import nkeys  # here, not at the top: connecting with a credentials file needs no nacl

    return bytes(nkeys.encode_seed(secrets.token_bytes(32), nkeys.PREFIX_BYTE_USER))


def public_key(seed: bytes) -> str:
    import nkeys

    pair = nkeys.from_seed(bytearray(seed))
    try:
        return str(pair.public_key.decode())
    finally:
        pair.wipe()


def inbox_prefix(name: str) -> str:
    """Each principal's replies arrive under its own inbox, which only it may subscribe to."""
    return f"_INBOX.{name}"


@dataclass(frozen=True, slots=True)
class Credentials:
    name: str
    kind: Kind
    seed: str
    inbox_prefix: str
    ca_file: Path | None = None


def write(path: Path, name: str, kind: Kind, seed: bytes, ca_file: Path | None = None) -> None:
    lines = [
        f"# hivebus credentials for {kind.value} {name!r}: whoever holds this file is {name}.",
        "# Keep it secret. Connect with NATS nkey authentication using the seed below and",
        "# the inbox prefix given here (replies outside it are not delivered to you).",
        f"# name: {name}",
        f"# kind: {kind.value}",
        f"# inbox_prefix: {inbox_prefix(name)}",
    ]
    if ca_file is not None:
        lines.append(f"# ca_file: {ca_file}")
    write_private(path, ("\n".join(lines) + "\n" + seed.decode() + "\n").encode())


def read_credentials(path: Path) -> Credentials | None:
    """The hivebus credentials in ``path``; ``None`` when it is another kind of file (a NATS
    JWT ``.creds`` file is passed to nats-py as it is)."""
    fields: dict[str, str] = {}
    seed: str | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        elif line.startswith("SU"):
            seed = line
        elif "BEGIN NATS USER JWT" in line:
            return None
    if seed is None or "name" not in fields:
        return None
    ca = fields.get("ca_file")
    return Credentials(
        name=fields["name"],
        kind=Kind(fields.get("kind", "client")),
        seed=seed,
        inbox_prefix=fields.get("inbox_prefix", inbox_prefix(fields["name"])),
        ca_file=Path(ca) if ca else None,
    )
