"""The library API fuzzed signed in: schemathesis generates requests from /openapi.json and sends
them with a real session cookie and CSRF token, so they reach the handlers (signed out, they stop
at the 401 that tests/test_web_schema.py sees). No request may give a 500, and every response must
match the documented schema and status codes."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.webserver import LINKED_TITLE, demo_server, find_paper_id

# their server is started once for the module: with --engine postgres, one database for the module
PG_SCOPE = "module"
pytestmark = pytest.mark.slow  # asks the shared demo server

OPERATIONS = [
    ("GET", "/api/library"), ("GET", "/api/library/tags"), ("POST", "/api/library/tags"),
    ("PATCH", "/api/library/tags/{tag_id}"), ("DELETE", "/api/library/tags/{tag_id}"),
    ("POST", "/api/library/tags/{tag_id}/feed"), ("PUT", "/api/library/papers/{paper_id}"),
    ("DELETE", "/api/library/papers/{paper_id}"), ("DELETE", "/api/library/papers/{paper_id}/tags/{tag_id}"),
    ("GET", "/api/library/not-interested"), ("PUT", "/api/library/not-interested/{paper_id}"),
    ("DELETE", "/api/library/not-interested/{paper_id}"), ("GET", "/api/library/follows"),
    ("POST", "/api/library/follows"), ("DELETE", "/api/library/follows/{follow_id}"),
    ("GET", "/api/recommendations"), ("POST", "/api/library/import"), ("GET", "/api/library/export"),
    ("GET", "/api/session"),
]  # fmt: skip


@pytest.fixture(scope="module")
def signed_in() -> requests.Session:
    srv = demo_server()
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/signup").text).group(1)  # type: ignore[union-attr]
        c.post("/signup", data={"email": f"fuzz{uuid.uuid4().hex[:8]}@example.org", "password": "correct horse 1",
                                "csrf_token": token})  # fmt: skip
        h = {"X-CSRF-Token": c.get("/api/session").json()["csrf_token"]}
        # something to act on: a tag with a paper in it
        tag = c.post("/api/library/tags", json={"name": "fuzzed"}, headers=h).json()["id"]
        c.put(f"/api/library/papers/{find_paper_id(srv.data_dir, LINKED_TITLE)}", json={"tags": [tag]}, headers=h)
        s = requests.Session()
        s.cookies.update(dict(c.cookies))
        s.headers.update(h)
        return s


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_library_operation_never_fails_signed_in(signed_in: requests.Session, method: str, path: str) -> None:
    base = demo_server().url
    operation = schemathesis.openapi.from_url(f"{base}/openapi.json")[path][method]
    seen: set[int] = set()

    @given(case=operation.as_strategy())
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case: schemathesis.Case) -> None:
        # 400 for a valid request is right where a rule spans content (a name of only spaces, a
        # tag limit reached), which OpenAPI cannot express
        response = case.call_and_validate(
            base_url=base, session=signed_in, timeout=60,
            excluded_checks=[schemathesis.checks.positive_data_acceptance],
        )  # fmt: skip
        assert response.status_code < 500
        seen.add(response.status_code)

    run()
    # the session and CSRF token were accepted: the requests reached the handlers
    assert seen and not seen & {401, 403}, seen
