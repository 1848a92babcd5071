"""The OpenAPI 3.1 document of the HTTP API, generated from the route tables (``OPS``) of
:mod:`server.api`, :mod:`server.tender_api`, :mod:`server.tender_bids` and
:mod:`streaming.http`."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from streaming import http as stream_http

from . import api, tender_api, tender_bids
from . import api_models as m
from .errors import CODES, http_status

_PARAM = re.compile(r"{(\w+)}")


OPS = (*api.OPS, *tender_api.OPS, *tender_bids.OPS, *stream_http.OPS)


def document(version: str) -> dict[str, Any]:
    responses = [op.response for op in OPS]
    bodies = [op.body for op in OPS if op.body is not None]
    schemas, components = msgspec.json.schema_components(
        [*responses, *bodies, m.Error], ref_template="#/components/schemas/{name}")
    response_schema = dict(zip(range(len(OPS)), schemas[: len(OPS)], strict=True))
    body_schema = iter(schemas[len(OPS): len(OPS) + len(bodies)])
    error_ref = schemas[-1]
    paths: dict[str, dict[str, Any]] = {}
    for index, op in enumerate(OPS):
        item: dict[str, Any] = {
            "summary": op.summary,
            "operationId": op.handler.__name__,
            "parameters": [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in _PARAM.findall(op.path)
            ] + [
                {"name": name, "in": "query", "required": False, "description": text,
                 "schema": {"type": "integer", "minimum": 0}}
                for name, text in op.query
            ],
            "responses": {
                str(op.status): {"description": "OK", "content": {
                    "application/json": {"schema": response_schema[index]}}},
                "default": {"description": "A refusal; `error.code` is one of the codes in "
                                          "x-error-codes", "content": {
                    "application/json": {"schema": error_ref}}},
            },
        }
        if op.body is not None:
            item["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": next(body_schema)}}}
        if op.auth == "staff":
            item["security"] = [{"staff": []}]
        elif op.auth == "optional":
            item["security"] = [{}, {"staff": []}]
        paths.setdefault(op.path, {})[op.method.lower()] = item
    return {
        "openapi": "3.1.0",
        "info": {"title": "bidhall", "version": version,
                 "description": "Admin and public API of bidhall. Money is whole yuan; "
                                "times are ms since the Unix epoch."},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"staff": {"type": "http", "scheme": "bearer",
                                          "description": "staff token (`bidhall staff-token`)"}},
        },
        "x-error-codes": {code: {"message": text, "status": http_status(code)}
                          for code, text in sorted(CODES.items())},
    }
