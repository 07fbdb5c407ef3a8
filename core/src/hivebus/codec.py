"""Bytes <-> models, with every decoding failure turned into the right error code.

The JSON a client sends is checked against RFC 8259 before the model sees it: pydantic's
parser would take ``NaN`` and ``Infinity`` (and store a ``NaN`` payload as ``null``) and
would resolve a duplicated key silently, last one wins. A first pass with the standard
library's C scanner refuses both, and integers that do not fit in 64 bits (they could not be
stored), and bounds nesting; then the model validates the same
bytes in strict mode, so no value is coerced across JSON types (``"5"`` is not an integer,
``1`` is not ``true``).
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import orjson
from hivebus_hookspecs.models import MAX_JSON_DEPTH, ErrorCode
from pydantic import BaseModel, ValidationError

from .errors import HivebusError

__all__ = ["MAX_JSON_DEPTH", "decode", "encode", "json_depth"]

M = TypeVar("M", bound=BaseModel)

_LISTED_PROBLEMS = 3
"""An error names this many offending fields and counts the rest: a reply must stay small
whatever the request held (25,000 unknown fields once made a 1 MB error reply)."""


class _Refused(ValueError):
    """Raised from inside the scanner; its message becomes the error reply."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(f"duplicate key {key[:64]!r}")
            seen.add(key)
    return obj


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


_INT_RANGE = range(-(2**63), 2**64)


def _integer(text: str) -> int:
    value = int(text)
    if value not in _INT_RANGE:
        raise _Refused(f"integer {text[:24]}... does not fit in 64 bits")
    return value


_SCANNER = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_constant, parse_int=_integer)


def json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """How deeply ``value`` nests (a scalar is 0), counting no further than ``limit + 1``.

    Level by level, and by exact type: what the scanner builds holds only ``dict`` and
    ``list`` (a 32 KiB payload of 330 small objects: 250 us walked node by node, 65 us so)."""
    depth = 0
    level = [value] if type(value) is dict or type(value) is list else []
    while level:
        depth += 1
        if depth > limit:
            return depth
        deeper = []
        for node in level:
            for child in node.values() if type(node) is dict else node:
                if type(child) is dict or type(child) is list:
                    deeper.append(child)
        level = deeper
    return depth


def decode(data: bytes, model: type[M], limit: int) -> M:
    """Parse a request body; an empty body is the empty object."""
    if len(data) > limit:
        raise HivebusError(
            ErrorCode.PAYLOAD_TOO_LARGE, f"body is {len(data)} bytes; the limit is {limit}"
        )
    if not data:
        data = b"{}"
    try:
        tree = _SCANNER.decode(data.decode())
    except _Refused as exc:
        raise HivebusError(ErrorCode.INVALID_JSON, f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise HivebusError(
            ErrorCode.INVALID_JSON, f"body nests deeper than {MAX_JSON_DEPTH} levels"
        ) from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        message = str(exc).splitlines()[0][:200]
        raise HivebusError(ErrorCode.INVALID_JSON, f"body is not valid JSON: {message}") from None
    if json_depth(tree) > MAX_JSON_DEPTH:
        raise HivebusError(
            ErrorCode.INVALID_JSON, f"body nests deeper than {MAX_JSON_DEPTH} levels"
        )
    try:
        return model.model_validate_json(data, strict=True)
    except ValidationError as exc:
        raise _to_error(exc) from None


def _to_error(exc: ValidationError) -> HivebusError:
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    if any(e["type"] == "json_invalid" for e in errors):
        return HivebusError(ErrorCode.INVALID_JSON, f"body is not valid JSON: {errors[0]['msg']}")
    problems = []
    for error in errors[:_LISTED_PROBLEMS]:
        where = ".".join(str(part)[:64] for part in error["loc"]) or "body"
        if error["type"] == "model_type":
            problems.append("body must be a JSON object")
        elif error["type"] == "extra_forbidden":
            problems.append(f"{where}: unknown field")
        else:
            problems.append(f"{where}: {error['msg'][:200]}")
    more = len(errors) - _LISTED_PROBLEMS
    if more > 0:
        problems.append(f"and {more} more problem{'s' if more > 1 else ''}")
    return HivebusError(ErrorCode.INVALID_REQUEST, "; ".join(problems))


def encode(body: BaseModel | dict[str, Any]) -> bytes:
    if isinstance(body, BaseModel):
        return body.__pydantic_serializer__.to_json(body)
    return orjson.dumps(body)
