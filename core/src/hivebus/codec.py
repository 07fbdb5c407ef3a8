"""Bytes <-> models, with every decoding failure turned into the right error code."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from hivebus_hookspecs.models import ErrorCode
from pydantic import BaseModel, ValidationError

from .errors import HivebusError

__all__ = ["decode", "encode"]

M = TypeVar("M", bound=BaseModel)


def decode(data: bytes, model: type[M], limit: int) -> M:
    """Parse a request body; an empty body is the empty object."""
    if len(data) > limit:
        raise HivebusError(
            ErrorCode.PAYLOAD_TOO_LARGE, f"body is {len(data)} bytes; the limit is {limit}"
        )
    try:
        return model.model_validate_json(data or b"{}")
    except ValidationError as exc:
        raise _to_error(exc) from None


def _to_error(exc: ValidationError) -> HivebusError:
    errors = exc.errors(include_url=False, include_input=False)
    if any(e["type"] == "json_invalid" for e in errors):
        return HivebusError(ErrorCode.INVALID_JSON, f"body is not valid JSON: {errors[0]['msg']}")
    problems = []
    for error in errors:
        where = ".".join(str(part) for part in error["loc"]) or "body"
        if error["type"] == "model_type":
            problems.append("body must be a JSON object")
        elif error["type"] == "extra_forbidden":
            problems.append(f"{where}: unknown field")
        else:
            problems.append(f"{where}: {error['msg']}")
    return HivebusError(ErrorCode.INVALID_REQUEST, "; ".join(problems))


def encode(body: BaseModel | dict[str, Any]) -> bytes:
    if isinstance(body, BaseModel):
        return body.__pydantic_serializer__.to_json(body)
    return orjson.dumps(body)
