"""Base models and the one body parser: a pydantic error becomes the problem+json field list.

Requests are strict (no ``"30"`` for an integer, no ``1`` for a boolean) and closed
(``extra="forbid"``), so that what the generated JSON Schema rejects the server rejects too. Regex
constraints run on Python's ``re``, the engine JSON Schema validators use here as well.
"""
from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from shared.domain.errors import FieldError, InvalidInput

GUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
Guid = Annotated[str, Field(pattern=GUID_PATTERN, json_schema_extra={"format": "uuid"})]


def _whole_number(value: Any) -> Any:
    """JSON Schema's ``integer`` admits ``30.0``; so does the server (never ``true`` or ``"30"``)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value




def whole_numbers(*fields: str):
    """A before-validator for the model's whole-number fields (a class attribute): ``30.0`` is
    taken as ``30``. On the model rather than in the type, so the fields' bounds stay in the schema."""
    return field_validator(*fields, mode="before")(lambda cls, value: _whole_number(value))


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def absent(**kwargs: Any) -> Any:
    """A field that may be left out but is never ``null`` (its unset default is not on the wire)."""
    return Field(default=None, json_schema_extra=_drop_default, **kwargs)


def literal_of(values) -> Any:
    """``Literal[...]`` of the given values (from a domain enum or a catalog)."""
    return Literal[tuple(getattr(v, "value", v) for v in values)]  # type: ignore[valid-type]


class WireModel(BaseModel):
    """camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, regex_engine="python-re")


class RequestModel(WireModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    @classmethod
    def rule_errors(cls, raw: Any) -> list[FieldError]:
        """Rules across fields (from the domain), checked on the decoded body even when a field
        failed, so that every violation is reported at once."""
        return []


class ResponseModel(WireModel):
    model_config = ConfigDict(from_attributes=True)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


M = TypeVar("M", bound=RequestModel)

#: pydantic error type → our field error ``code`` (the codes the API has always used).
_CODES = {
    "missing": "required", "extra_forbidden": "unknown", "string_too_short": "length",
    "string_too_long": "length", "too_short": "length", "too_long": "length",
    "string_pattern_mismatch": "format", "literal_error": "enum", "enum": "enum",
    "greater_than_equal": "range", "less_than_equal": "range", "greater_than": "range", "less_than": "range",
    "int_from_float": "type",
}


def field_path(loc: tuple[Any, ...]) -> str:
    """``("adminCenter", "url")`` → ``adminCenter.url``; ``("profileIds", 3)`` → ``profileIds[3]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def field_errors(exc: ValidationError, messages: dict[tuple[str, str], str] | None = None) -> list[FieldError]:
    """Our field errors from pydantic's (``messages`` overrides the text per field and code)."""
    errors = []
    for e in exc.errors(include_url=False, include_input=False):
        kind = e["type"]
        code = _CODES.get(kind, "type")
        detail = e["msg"]
        if kind == "missing":
            detail = "Required."
        elif kind == "extra_forbidden":
            detail = f"'{e['loc'][-1]}' is not a field of this request."
        path = field_path(tuple(e["loc"]))
        errors.append(FieldError(path, code, (messages or {}).get((path, code), detail)))
    return errors


class MalformedJson(ValueError):
    """The body is not JSON at all (400, not 422)."""


class BodyTooLarge(ValueError):
    """The body is longer than :data:`MAX_BODY_BYTES` (413)."""


#: The limits every request body is held to, in one place (webhooks included): its size, the
#: nesting depth of its JSON and the digits of one number. Every body the contract accepts is below
#: them: the largest, a job of 10,000 profile ids (``MAX_PROFILE_IDS``), is about 381 KiB.
MAX_BODY_BYTES = 512 * 1024
MAX_DEPTH = 16
MAX_NUMBER_DIGITS = 20

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_LONG_NUMBER = re.compile(rb"[0-9]{%d,}" % (MAX_NUMBER_DIGITS + 1))
_DEPTH = bytes.maketrans(b"[{]}\x01\x02", b"\x01\x01\x02\x02\x00\x00")
_NOT_DEPTH = bytes(b for b in range(256) if b not in (1, 2))


def check_limits(raw: bytes | str) -> None:
    """Refuse a body past :data:`MAX_BODY_BYTES` (:class:`BodyTooLarge`), nested deeper than
    :data:`MAX_DEPTH` or with a number of more than :data:`MAX_NUMBER_DIGITS` digits
    (:class:`MalformedJson`), before any parser or signature check spends time on it."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if len(data) > MAX_BODY_BYTES:
        raise BodyTooLarge(f"The body has {len(data)} bytes; at most {MAX_BODY_BYTES} are accepted.")
    outside = _STRING.sub(b'""', data)
    if _LONG_NUMBER.search(outside):
        raise MalformedJson(f"A number has more than {MAX_NUMBER_DIGITS} digits.")
    depth = 0
    for mark in outside.translate(_DEPTH).translate(None, _NOT_DEPTH):
        depth += 1 if mark == 1 else -1
        if depth > MAX_DEPTH:
            raise MalformedJson(f"The JSON is nested more than {MAX_DEPTH} levels deep.")


def parse_body(model: type[M], raw: bytes | str) -> M:
    """Parse a JSON body into ``model`` or raise :class:`InvalidInput` listing every violated
    field rule and cross-field rule at once (:class:`MalformedJson` when it is not JSON). No input
    reaches a 500: the size, depth and number limits (:func:`check_limits`) come first, and bad
    UTF-8 is refused by pydantic's JSON parser."""
    check_limits(raw)
    try:
        value = model.model_validate_json(raw, strict=True)
        errors: list[FieldError] = []
    except ValidationError as exc:
        details = exc.errors(include_url=False, include_input=False)
        if any(e["type"] == "json_invalid" for e in details):
            raise MalformedJson(details[0]["msg"]) from exc
        value, errors = None, field_errors(exc, getattr(model, "MESSAGES", None))
    known = {e.field for e in errors}
    errors += [e for e in model.rule_errors(_decode(raw)) if e.field not in known]
    if errors:
        raise InvalidInput(errors)
    return value


def parse_value(model: type[M], value: Any, *, prefix: str = "") -> M:
    """:func:`parse_body` for a value already decoded (an event's data); fields are reported under
    ``prefix`` (e.g. ``data.profile.name``)."""
    try:
        return parse_body(model, json.dumps(value))
    except InvalidInput as exc:
        if not prefix:
            raise
        raise InvalidInput([FieldError(f"{prefix}.{e.field}" if e.field else prefix, e.code, e.detail)
                            for e in exc.errors]) from exc


def _decode(raw: bytes | str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None
