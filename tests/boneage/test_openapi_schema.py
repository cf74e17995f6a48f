"""The OpenAPI schema at /api/schema/ is real: every API route is in it, with a summary."""
from __future__ import annotations

import re

import pytest
import yaml
from django.urls import get_resolver

pytestmark = pytest.mark.django_db


def api_routes() -> set[str]:
    routes = set()

    def walk(patterns, prefix=""):
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if hasattr(pattern, "url_patterns"):
                walk(pattern.url_patterns, route)
            elif route.startswith("api/") and not route.startswith(("api/schema", "api/docs", "api/auth")):
                routes.add("/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route))

    walk(get_resolver().url_patterns)
    return routes


def test_every_api_route_is_documented_with_a_summary(api_as, owner):
    response = api_as(owner).get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    documented = set(schema["paths"])
    assert api_routes() <= documented, api_routes() - documented
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary") or operation.get("description"), f"{method.upper()} {path} has no summary"
