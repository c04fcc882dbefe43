"""Hostile upstream bodies through the product as it runs (issue 12, point 6): the simulator answers
a Validation Test's upstream call with a billion-laughs XML bomb, a 50 MB body, invalid UTF-8 or a
body that trickles in one byte a second; the answer is ``SERVICE_UNAVAILABLE`` (or, for a body
that is a readable refusal, the failure it says), within the test's deadline, and the app stays up.

The STS answer is parsed with entity expansion off (``parse_xml``, defusedxml's forbid-DTD rules):
tested below on inputs that pass any byte search (UTF-16, a DTD after 70 KiB of comment).
"""
from __future__ import annotations

import time

import pytest

from tests.demo import APP_PASSWORD, PASSWORD

CONTOSO_ADMIN = "https://contoso-admin.sharepoint.com"
#: UPSTREAM_TIMEOUT_SECONDS of the test app (tests/fixtures/app.py): a trickle ends there at the latest
UPSTREAM_TIMEOUT = 10.0
#: what a hostile answer may cost at most (a trickle: the upstream timeout, plus the app's own work)
PATIENCE = UPSTREAM_TIMEOUT + 5.0


def require_hostile_bodies(sim, session) -> None:
    """Skip when the simulator's server does not serve hostile bodies yet (see m365sim README)."""
    from devtools.m365sim.faults import INVALID_UTF8

    sim.control.add_hostile("entra.discovery", "invalidUtf8", count=1)
    try:
        served = INVALID_UTF8 in session.get(
            "https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration", timeout=10).content
    finally:
        sim.control.clear_hostile()
    if not served:
        pytest.skip("m365sim's server does not apply hostile-body rules (server.py: faults.respond hook)")


def form(mfa: bool) -> dict:
    if mfa:
        return {"name": "hostile", "mfaEnabled": True, "username": "mfa@contoso.onmicrosoft.com",
                "password": APP_PASSWORD, "adminCenter": {"mode": "custom", "url": CONTOSO_ADMIN}}
    return {"name": "hostile", "mfaEnabled": False, "username": "admin@contoso.onmicrosoft.com",
            "password": PASSWORD, "adminCenter": {"mode": "default"}}


CASES = [
    # (endpoint, kind, rule, MFA path)
    ("sharepoint.sts", "billionLaughs", {}, True),
    ("sharepoint.sts", "billionLaughs", {"status": 500}, True),
    ("sharepoint.sts", "huge", {}, True),
    ("entra.token", "huge", {}, False),
    ("graph", "huge", {}, False),
    ("sharepoint.sts", "invalidUtf8", {}, True),
    ("entra.token", "invalidUtf8", {}, False),
    ("entra.token", "invalidUtf8", {"status": 400}, False),
    ("graph", "invalidUtf8", {}, False),
    ("sharepoint.sts", "trickle", {"bytes": 600}, True),
    ("entra.token", "trickle", {"bytes": 600}, False),
]


@pytest.mark.parametrize("endpoint, kind, rule, mfa", CASES,
                         ids=[f"{e}-{k}{'-' + str(r['status']) if 'status' in r else ''}" for e, k, r, _ in CASES])
def test_a_hostile_answer_is_service_unavailable_within_the_deadline(api, sim, sim_session, tenant, endpoint, kind,
                                                                      rule, mfa):
    require_hostile_bodies(sim, sim_session)
    assert api.post(f"/api/tenants/{tenant}/validation-tests", json=form(mfa)).json()["status"] == "passed"  # warm
    sim.control.add_hostile(endpoint, kind, count=1, **rule)
    started = time.monotonic()
    response = api.post(f"/api/tenants/{tenant}/validation-tests", json=form(mfa))
    elapsed = time.monotonic() - started
    outcome = response.json()
    assert response.status_code == 200, outcome
    assert (outcome["status"], outcome["messageId"]) == ("error", "SERVICE_UNAVAILABLE"), outcome
    assert elapsed < PATIENCE, f"{kind} on {endpoint} took {elapsed:.1f} s"
    counters = sim.control.counters()[endpoint]
    assert counters["byStatus"].get(f"hostile.{kind}") == 1, counters  # the hostile answer was the one read
    # and the app is fine afterwards: the next test passes as before
    assert api.post(f"/api/tenants/{tenant}/validation-tests", json=form(mfa)).json()["status"] == "passed"


# --- the STS parser: entity expansion off, whatever byte search would miss ------------------------

ENVELOPE = ('<S:Envelope xmlns:S="http://www.w3.org/2003/05/soap-envelope" '
            'xmlns:wst="http://schemas.xmlsoap.org/ws/2005/02/trust" '
            'xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd">'
            '<S:Body><wst:RequestSecurityTokenResponse><wst:RequestedSecurityToken>'
            '<wsse:BinarySecurityToken>{token}</wsse:BinarySecurityToken>'
            '</wst:RequestedSecurityToken></wst:RequestSecurityTokenResponse></S:Body></S:Envelope>')
FORGED = '<!DOCTYPE S:Envelope [<!ENTITY t "t=forged&amp;p=">]>'


@pytest.mark.parametrize("document", [
    ('<?xml version="1.0" encoding="utf-16"?>' + FORGED + ENVELOPE.format(token="&t;")).encode("utf-16"),
    ('<?xml version="1.0"?><!--' + "x" * 70_000 + "-->" + FORGED + ENVELOPE.format(token="&t;")).encode(),
    ("\ufeff" + FORGED + ENVELOPE.format(token="&t;")).encode("utf-8"),
    ('<!DOCTYPE S:Envelope SYSTEM "http://198.51.100.1/evil.dtd">' + ENVELOPE.format(token="t=x&amp;p=")).encode(),
], ids=["utf-16", "dtd-after-70-KiB", "utf-8-bom", "external-dtd"])
def test_the_sts_answer_never_expands_an_entity(document):
    from shared.adapters.sharepoint_legacy_sign_in import parse_issue_response

    assert parse_issue_response(document) == (None, "STS_INVALID_RESPONSE",
                                              "the security token service answered with a document type")


def test_the_billion_laughs_is_refused_at_once():
    from devtools.m365sim.faults import billion_laughs
    from shared.adapters.sharepoint_legacy_sign_in import parse_issue_response

    started = time.monotonic()
    for document in (billion_laughs(), billion_laughs().decode().encode("utf-16")):
        assert parse_issue_response(document)[1] == "STS_INVALID_RESPONSE"
    assert time.monotonic() - started < 0.5


def test_a_plain_envelope_still_parses():
    from shared.adapters.sharepoint_legacy_sign_in import parse_issue_response

    assert parse_issue_response(ENVELOPE.format(token="t=ok&amp;p=").encode("utf-16")) == ("t=ok&p=", None, None)
