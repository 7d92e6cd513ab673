"""Property-based API testing: schemathesis generates requests from /openapi.json and
sends them to the real server; no request may give a 500, and every response
must match the documented schema and status codes.

The operations are driven with plain hypothesis `@given` (schemathesis's pytest
plugin does not work with this pytest version), one test per operation.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings

from paperfeed.web.app import routers
from tests.webserver import demo_server

pytestmark = pytest.mark.slow  # drives the shared demo server with generated requests


def _labels(doc: dict) -> list[str]:
    return sorted(f"{method.upper()} {path}" for path, ops in doc["paths"].items() for method in ops)

# their server is started once for the module: with --engine postgres, one database for the module
PG_SCOPE = "module"
def _operations() -> list[str]:
    """The documented operations, from the app's routers alone: collecting the tests must not
    start a server (the live server's schema is checked against this list below)."""
    app = FastAPI()
    for router in routers():
        app.include_router(router)
    return _labels(app.openapi())


@pytest.fixture(scope="module")
def api_schema() -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{demo_server().url}/openapi.json")


def test_schema_documents_every_api_route() -> None:
    ops = _labels(httpx.get(f"{demo_server().url}/openapi.json", timeout=30).json())
    assert ops == _operations()
    for expected in ("GET /api/papers", "GET /api/papers/{paper_id}", "GET /api/search", "GET /api/trending",
                     "GET /api/papers/{paper_id}/similar", "GET /feeds/search.atom", "GET /healthz"):  # fmt: skip
        assert expected in ops


@pytest.mark.parametrize("label", _operations())
def test_operation_never_fails(api_schema: schemathesis.BaseSchema, label: str) -> None:
    method, path = label.split(" ", 1)
    operation = api_schema[path][method]
    base = demo_server().url

    @given(case=operation.as_strategy())
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case: schemathesis.Case) -> None:
        # A 400 for a schema-valid request is right when the rule spans fields
        # (since after until) or content (a query of only spaces), which OpenAPI
        # cannot express; every other check stays on.
        response = case.call_and_validate(
            base_url=base, timeout=30, excluded_checks=[schemathesis.checks.positive_data_acceptance]
        )
        assert response.status_code < 500

    run()
