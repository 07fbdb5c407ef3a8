"""A payload or result sent by reference: the wire form of a value too large for a message.

A value above the sender's offload size travels as ``{"$hivebus_ref": {...}}``, a JSON object
with that one key, in place of the value itself. The body names an object in a JetStream
object store holding the value's compact JSON encoding, compressed; a reader fetches the
object, decompresses it, checks its size and digest and parses the JSON. subjects.md
("Payloads and results by reference") describes it for clients in other languages.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

__all__ = ["REFERENCE_KEY", "Reference", "as_reference"]

REFERENCE_KEY = "$hivebus_ref"
"""The one key of a value sent by reference."""


class Reference(BaseModel):
    """Where a value sent by reference is stored, and how to read it back."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    v: Literal[1] = 1
    """The format's version; a reader refuses versions it does not know."""
    bucket: str = Field(min_length=1)
    """The JetStream object store (its stream is ``OBJ_<bucket>``)."""
    name: str = Field(min_length=1)
    """The object's name in that store."""
    encoding: Literal["zlib"] = "zlib"
    """How the object's bytes are packed: ``zlib`` (RFC 1950) of the JSON encoding."""
    size: int = Field(ge=0)
    """Bytes of the JSON encoding (the value before compression)."""
    stored: int = Field(ge=0)
    """Bytes of the object (after compression)."""
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    """SHA-256 of the JSON encoding, in lowercase hex."""

    def wire(self) -> dict[str, JsonValue]:
        """The value to send in place of the original: ``{"$hivebus_ref": {...}}``."""
        return {REFERENCE_KEY: self.model_dump(mode="json")}


def as_reference(value: object) -> Reference | None:
    """The reference ``value`` is, or ``None`` when it is a plain value.

    Raises ``ValueError`` for an object shaped like a reference that is not a valid one (a
    version this reader does not know, a missing field): guessing would hand a handler data
    it did not expect.
    """
    if not isinstance(value, dict) or len(value) != 1 or REFERENCE_KEY not in value:
        return None
    try:
        return Reference.model_validate(value[REFERENCE_KEY])
    except ValidationError as exc:
        raise ValueError(f"not a reference this reader can resolve: {exc}") from None
