"""Schemathesis over the served OpenAPI, on the app as it runs (local host, Azurite, simulator):
every operation, with the key; no answer is a server error, every answer conforms to the document
(status documented, body valid against its schema), every error is problem+json."""
from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from tests.fixtures.local_host import LOCAL_KEY

#: Examples per operation: the fast part inside ``make test``.
EXAMPLES = 25


@pytest.fixture(scope="module")
def live_schema(app_host):
    return schemathesis.openapi.from_url(app_host.url + "/api/openapi.json")


@pytest.mark.parametrize("key", [LOCAL_KEY, None], ids=["with the key", "without a key"])
def test_every_operation_answers_as_documented_and_never_5xx(live_schema, app_host, key):
    failures = []
    fuzzed = 0
    headers = {"x-functions-key": key} if key else {}
    for result in live_schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/api/webhooks/admin-portal":
            continue  # signed: its contract is fuzzed in-process (tests/unit/test_contract_properties.py)

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def probe(case):
            nonlocal fuzzed
            fuzzed += 1
            response = case.call(base_url=app_host.url, headers=headers, timeout=60)
            protected = operation.definition.raw.get("security") != []
            if key is None and protected and response.status_code != 401:
                failures.append((operation.label, "answered without a key", response.status_code))
            if response.status_code >= 500 and response.status_code != 503:
                failures.append((operation.label, response.status_code, response.text[:300]))
            case.validate_response(response, checks=[checks.status_code_conformance,
                                                     checks.content_type_conformance,
                                                     checks.response_schema_conformance])

        try:
            probe()
        except Exception as exc:  # noqa: BLE001 - collected, reported together
            failures.append((operation.label, type(exc).__name__, str(exc)[:800]))
    print(f"fuzzed {fuzzed} requests")
    assert not failures, "\n".join(map(str, failures))
