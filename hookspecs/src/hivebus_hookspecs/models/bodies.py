"""The two kinds of body: what a client sends (strict) and what the core produces (tolerant)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = [
    "CoreBody",
    "RequestBody",
]


class RequestBody(BaseModel):
    """A request body: unknown fields are rejected so typos surface as errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CoreBody(BaseModel):
    """A body the core produces; readers should ignore fields they do not know."""

    model_config = ConfigDict(extra="ignore", frozen=True)
