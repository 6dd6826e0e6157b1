"""Vendor JSON read into the small private models each connector declares, validated once where it arrives.

Each connector declares at the top of its file pydantic models (subclasses of :class:`Payload`)
for exactly the fields it reads: fields it does not read are ignored, vendor names go through
aliases, a field is required where the connector cannot work without it (or where a vendor that
renamed it would otherwise leave our ticket half-filled), and nullable where the vendor sends
``null``. :func:`read` parses an answer's body into such a model in one pass (pydantic-core reads
the JSON). An answer that is not JSON, or does not fit, raises :class:`~mspclaw.errors.PSAError`
(code ``psa_error``, not retryable: repeating the request brings the same answer) naming the PSA,
the request (method and path, never the query string) and the path of each field that was
wrong, for example::

    SuperOps answered POST /msp with a payload we cannot read: data.getTicket.client.accountId:
    Input should be a valid string (got a JSON number)

The value itself is never quoted (it may be a token or a person's details), only its JSON type.
Nothing is built from a payload that does not fit, so a vendor's API change gives this one error
instead of a half-filled ticket, and no write is made on the strength of a half-read answer.
:func:`webhook_body` does the same for an inbound webhook and raises
:class:`~mspclaw.errors.MalformedWebhook` instead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, TypeVar

import httpx
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Strict, StringConstraints, ValidationError

from mspclaw.connectors.text import utc
from mspclaw.errors import MalformedWebhook, PSAError

MAX_PROBLEMS: Final = 3
"""Field problems named in one error (the first ones; a renamed field usually explains the rest)."""


class Payload(BaseModel):
    """Base of the connectors' payload models: unknown fields ignored, fields by alias or by name."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


M = TypeVar("M", bound=BaseModel)


def _empty_is_none(value: object) -> object:
    return None if value == "" else value


def _null_is_empty(value: object) -> object:
    return "" if value is None else value


def _in_utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else utc(moment)


def _trimmed(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip() or None


Id = Annotated[int, Strict()]
"""A numeric record id: a JSON integer (a string or ``true`` is not one)."""
Key = str | Id
"""A record id as a vendor may send it: a JSON string or integer (not ``true``, not a fraction)."""
Text = Annotated[str, BeforeValidator(_null_is_empty)]
"""A string; ``null`` reads as the empty string."""
Name = Annotated[str | None, AfterValidator(_trimmed)]
"""A string trimmed, or ``None`` when absent, ``null`` or blank."""
Token = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9\-._~+/]+=*$", max_length=8192)] | None
"""A bearer token as RFC 6750 allows it (``b64token``: ASCII letters, digits, ``-._~+/``, then ``=`` padding), at
most 8 KiB; anything else could not go in an ``Authorization`` header and is the vendor's error."""
Moment = Annotated[datetime, AfterValidator(utc)]
"""An ISO-8601 time, required, in UTC (a time without zone is UTC)."""
Time = Annotated[datetime | None, BeforeValidator(_empty_is_none), AfterValidator(_in_utc)]
"""An ISO-8601 time in UTC (a time without zone is UTC, as every PSA here sends it); ``None`` for
``null`` or the empty string."""


def _json_type(value: Any) -> str:
    match value:
        case None:
            return "null"
        case bool():
            return "boolean"
        case int() | float():
            return "number"
        case str():
            return "string"
        case list():
            return "array"
        case dict():
            return "object"
    return type(value).__name__


def field_path(loc: tuple[int | str, ...]) -> str:
    """``('data', 'tickets', 3, 'id')`` as ``data.tickets[3].id``; the document itself is ``(the answer)``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(the answer)"


def problems(exc: ValidationError) -> str:
    """What was wrong, field by field (at most :data:`MAX_PROBLEMS`), without quoting any value."""
    errors = exc.errors(include_url=False)
    said: list[str] = []
    for error in errors[:MAX_PROBLEMS]:
        where = field_path(tuple(p for p in error["loc"] if p != "root"))
        got = "" if error["type"] == "missing" else f" (got a JSON {_json_type(error.get('input'))})"
        said.append(f"{where}: {error['msg']}{got}")
    more = len(errors) - MAX_PROBLEMS
    return "; ".join(said) + (f"; and {more} more" if more > 0 else "")


def where(response: httpx.Response) -> str:
    """``METHOD /path`` of the request an answer answers (no query string: it may carry secrets)."""
    return f"{response.request.method} {response.request.url.path}"


def read(model: type[M], response: httpx.Response, *, service: str) -> M:
    """The answer's body as ``model``, or :class:`PSAError` naming ``service``, the request and the fields."""
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise answer_error(exc, service=service, request=where(response)) from exc


def validate(model: type[M], data: Any, *, service: str, request: str) -> M:
    """``data`` (JSON already decoded) as ``model``; the same errors as :func:`read`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise answer_error(exc, service=service, request=request) from exc


def answer_error(exc: ValidationError, *, service: str, request: str) -> PSAError:
    """The :class:`PSAError` for an answer that does not fit its model."""
    first = exc.errors(include_url=False)[0]
    if first["type"] == "json_invalid":
        return PSAError(f"{service} answered {request} with something that is not JSON ({first['msg']})")
    return PSAError(f"{service} answered {request} with a payload we cannot read: {problems(exc)}")


def webhook_body(model: type[M], body: bytes, *, service: str) -> M:
    """A webhook body as ``model``, or :class:`MalformedWebhook` saying which field was wrong."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["type"] in ("json_invalid", "json_type"):
            raise MalformedWebhook(f"the {service} webhook body is not JSON: {first['msg']}") from exc
        if not first["loc"] and first["type"] in ("model_type", "dict_type", "model_attributes_type"):
            raise MalformedWebhook(f"the {service} webhook body is not a JSON object") from exc
        raise MalformedWebhook(f"the {service} webhook body does not fit: {problems(exc)}") from exc
