"""Checking a fake PSA's traffic against the vendor's OpenAPI document with openapi-core.

:class:`SpecCheck` validates each request a connector sends (path, method, parameters and their
types, security, body against the operation's schema) and, beyond what OpenAPI itself enforces,
refuses query parameters the operation does not declare, so a misspelt filter fails the test
instead of being silently ignored by the fake. It validates each answer the fake gives against the
operation's response schema (where the spec has one) and, with :meth:`SpecCheck.record`, single
records against a component schema (Halo's spec says only "Success" for its responses).

Specs are loaded once per test session. The documents are third-party files kept read-only in
shared/specs; the few errata we must correct to load them are applied in memory and listed by the
caller (each names the vendor behaviour it follows).
"""

from __future__ import annotations

import functools
import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from jsonschema.exceptions import ValidationError
from openapi_core import Config, OpenAPI
from openapi_core.contrib.starlette import StarletteOpenAPIRequest
from openapi_core.templating.paths.exceptions import PathNotFound
from openapi_core.testing import MockResponse
from openapi_schema_validator import OAS30Validator, OAS31Validator
from starlette.requests import Request

SPECS = Path(__file__).resolve().parents[1] / "data" / "specs"
"""The vendors' published documents, gzipped, as they are in the project's shared/specs (each folder's
SOURCE.md says where they come from). Kept in the repository so the tests run in any checkout."""

Errata = Callable[[dict[str, Any]], None]


@functools.cache
def _document(relative: str) -> str:
    return gzip.decompress((SPECS / f"{relative}.gz").read_bytes()).decode("utf-8")


class SpecCheck:
    def __init__(self, relative: str, errata: Errata | None = None) -> None:
        text = _document(relative)
        spec: dict[str, Any] = json.loads(text) if relative.endswith(".json") else yaml.safe_load(text)
        if errata is not None:
            errata(spec)
        self.spec = spec
        # The spec itself is not re-validated (a third party's document; seconds for each load). openapi-core
        # skips the check for None (OpenAPI.check_spec), which its annotation of the field leaves out.
        self.api = OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))  # type: ignore[arg-type]
        validator = OAS31Validator if str(spec.get("openapi", "")).startswith("3.1") else OAS30Validator
        self._validator_cls = validator
        self._validators: dict[str, Any] = {}

    def request(self, request: Request, body: bytes) -> list[str]:
        """What is wrong with this request according to the spec (empty when it is valid)."""
        adapted = StarletteOpenAPIRequest(request, body or None)
        where = f"{request.method} {request.url.path}"
        try:
            result = self.api.unmarshal_request(adapted)
        except PathNotFound:
            return [f"{where}: the spec has no such path"]
        problems = [f"{where}: {_describe(e)}" for e in result.errors]
        if not problems:
            declared = self._query_names(request)
            extra = sorted(set(request.query_params) - declared)
            if extra:
                problems.append(f"{where}: query parameters {extra} are not declared by the spec")
        return problems

    def response(self, request: Request, body: bytes, status: int, content_type: str = "application/json") -> list[str]:
        """What is wrong with this answer according to the operation's response schema."""
        adapted = StarletteOpenAPIRequest(request, None)
        result = self.api.unmarshal_response(adapted, MockResponse(body, status_code=status,
                                                                   content_type=content_type))
        return [f"answer to {request.method} {request.url.path}: {_describe(e)}" for e in result.errors]

    def record(self, schema: str, value: Any) -> list[str]:
        """What is wrong with ``value`` as an instance of ``components/schemas/{schema}``."""
        validator = self._validators.get(schema)
        if validator is None:
            root = {"$ref": f"#/components/schemas/{schema}", "components": self.spec["components"]}
            validator = self._validators[schema] = self._validator_cls(root)
        return [f"{schema}: {e.message}" for e in validator.iter_errors(value)]

    def _query_names(self, request: Request) -> set[str]:
        servers = self.spec.get("servers") or [{"url": ""}]
        prefix = urlsplit(str(servers[0].get("url", ""))).path.rstrip("/")
        for template, item in self.spec["paths"].items():
            if _matches(prefix + template, request.url.path):
                operation = item.get(request.method.lower(), {})
                parameters = list(item.get("parameters", [])) + list(operation.get("parameters", []))
                return {self._resolve(p).get("name", "") for p in parameters if self._resolve(p).get("in") == "query"}
        return set()

    def _resolve(self, parameter: dict[str, Any]) -> dict[str, Any]:
        ref = parameter.get("$ref")
        if not isinstance(ref, str):
            return parameter
        node: Any = self.spec
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return dict(node)


def _matches(template: str, path: str) -> bool:
    want, have = template.strip("/").split("/"), path.strip("/").split("/")
    return len(want) == len(have) and all(w == h or (w.startswith("{") and w.endswith("}")) for w, h in zip(
        want, have, strict=True))


def _describe(error: Exception) -> str:
    causes: list[str] = []
    cause = error.__cause__
    while cause is not None:
        schema_errors = getattr(cause, "schema_errors", None)
        if schema_errors:
            causes += [e.message if isinstance(e, ValidationError) else str(e) for e in schema_errors]
        else:
            causes.append(str(cause))
        cause = cause.__cause__
    return f"{type(error).__name__}: {'; '.join(causes) or error}"
