"""The OpenAPI 3 document, generated from the route table and the models that validate."""

from __future__ import annotations

from functools import cache
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from exporter import __version__
from exporter.http.api import ROUTES, Route
from exporter.http.auth import READ
from exporter.http.handling import MAX_IDEMPOTENCY_KEY, check_roles, json_response
from exporter.http.models import ErrorOut

_REF = "#/components/schemas/{model}"


def _operation(route: Route, refs: dict[Any, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": route.summary,
        "operationId": route.handler.__name__,
        "x-roles": sorted(route.roles),
        "responses": {
            "default": {
                "description": "An error",
                "content": {"application/json": {"schema": refs[(ErrorOut, "serialization")]}},
            }
        },
    }
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": kind}}
        for name, kind in (("key", "string"), ("id", "integer"))
        if "{" + name + "}" in route.path
    ]
    if route.report_kind is not None:
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_IDEMPOTENCY_KEY,
                    "pattern": "^[!-~]+$",
                },
            }
        )
    if params:
        op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": refs[(route.body, "validation")]}},
        }
    ok: dict[str, Any] = {"description": "Success"}
    if route.response is not None:
        ok["content"] = {"application/json": {"schema": refs[(route.response, "serialization")]}}
    op["responses"][str(route.status)] = ok
    return op


@cache
def openapi_document() -> dict[str, Any]:
    """Built once: it depends on the code only."""
    models: list[tuple[type[BaseModel], Any]] = [(ErrorOut, "serialization")]
    for route in ROUTES:
        if route.body is not None:
            models.append((route.body, "validation"))
        if route.response is not None:
            models.append((route.response, "serialization"))
    refs, schema = models_json_schema(list(dict.fromkeys(models)), ref_template=_REF)
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": "integration-monitor", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": schema.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


async def openapi(request: web.Request) -> web.Response:
    await check_roles(request, READ, allow_session=True)
    return json_response(openapi_document())


def add_openapi_route(app: web.Application) -> None:
    app.router.add_get("/api/v1/openapi.json", openapi)
