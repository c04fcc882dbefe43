"""The server and its generated OpenAPI agree on every request body, both ways (property tests).

For each operation with a body, hypothesis sends bodies generated from the schema
(hypothesis-jsonschema), the same bodies with one field broken, removed or added, and arbitrary
JSON, to the real trigger (in process, over fakes). Then:

* a body the schema rejects is answered 400/422 with a problem that names fields;
* a body the schema accepts is never refused as malformed (no 400/415/422), except where a rule
  depends on stored state that no schema can know (named per operation below).
"""
from __future__ import annotations

import json
import uuid
from functools import lru_cache

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from shared.contract.openapi import document
from shared.contract.routes import BY_ID
from shared.domain.profile import profile_input
from shared.services.webhooks import sign
from tests.inprocess import InProcessApp

T = "11111111-1111-4111-8111-111111111111"
MFA = {"name": "pool member", "username": "mfa@contoso.onmicrosoft.com", "password": "qwertyuiopasdfgh",
       "mfaEnabled": True, "adminCenter": {"mode": "custom", "url": "https://contoso-admin.sharepoint.com"}}
WEBHOOK_KEY = "property-key"


def body_schema(operation_id: str) -> dict:
    """The operation's body schema, standalone (its ``$ref``s resolve inside it)."""
    doc = document()
    ref = BY_ID[operation_id].body.__name__
    return {**doc["components"]["schemas"][ref], "components": doc["components"]}


def validator(schema: dict):
    return jsonschema.Draft202012Validator(schema, format_checker=None)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                    max_leaves=12)


@st.composite
def near(draw, valid: st.SearchStrategy):
    """A valid body with one top-level or nested field replaced, removed, or one field added."""
    body = draw(valid)
    if not isinstance(body, dict):
        return body
    target = body
    nested = [k for k, v in body.items() if isinstance(v, dict)]
    if nested and draw(st.booleans()):
        target = body[draw(st.sampled_from(sorted(nested)))]
    key = draw(st.sampled_from(sorted(target) + ["extra"]))
    if draw(st.sampled_from(["replace", "remove", "replace"])) == "remove":
        target.pop(key, None)
    else:
        target[key] = draw(JSON | st.sampled_from(["", " ", "\x07", 30.0, -1, 10**6, True, "x" * 300]))
    return body


@lru_cache(maxsize=None)
def bodies(operation_id: str) -> st.SearchStrategy:
    valid = from_schema(body_schema(operation_id))
    return st.one_of(valid, near(valid), JSON)


def assert_agree(operation_id: str, body, answer, *, state_rule=lambda errors: False):
    schema_ok = validator(body_schema(operation_id)).is_valid(body)
    if not schema_ok:
        assert answer.status in (400, 422), (body, answer.status, answer.body[:300])
        problem = answer.json()
        assert problem["type"].startswith("https://m365-profiles.dev/problems/")
        if answer.status == 422:
            assert problem["errors"] and all("field" in e for e in problem["errors"])
        return
    if answer.status in (400, 415, 422):
        errors = answer.json().get("errors") or []
        assert state_rule(errors), ("schema-valid body refused", body, answer.body[:500])
    assert answer.status != 500, (body, answer.status, answer.body[:300])


SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                             HealthCheck.filter_too_much])


def no_state_rule(errors) -> bool:
    return False


def pool_members_rule(errors) -> bool:
    """Members must be existing MFA profiles of the tenant: a rule on stored state."""
    return bool(errors) and all(e["code"] in ("notFound", "notMfa") for e in errors)


def pfx_rule(errors) -> bool:
    """A PFX is read by Key Vault: a schema-valid base64 string that is no PFX is its refusal."""
    return bool(errors) and all(e["field"] == "certificate.pfx" for e in errors)


#: operation → (extra route parameters, the rule on stored state a schema-valid body may break)
STATELESS = {
    "createProfile": ({}, pfx_rule),
    "validationTest": ({}, no_state_rule),
    "createValidationJob": ({}, no_state_rule),
    "putAccountPool": ({}, pool_members_rule),
    "leasePoolMember": ({}, no_state_rule),
    "releasePoolMember": ({"leaseId": "5d0c4c5e-9a53-4a4e-8d44-1d4d1f7d7c3e"}, no_state_rule),
}


@pytest.mark.parametrize("operation_id", sorted(STATELESS))
@SETTINGS
@given(data=st.data())
def test_body_agrees_with_the_schema(operation_id, data):
    route, state_rule = STATELESS[operation_id]
    body = data.draw(bodies(operation_id), label="body")
    answer = InProcessApp().call(operation_id, raw=json.dumps(body).encode(), tenantId=T, **route)
    assert_agree(operation_id, body, answer, state_rule=state_rule)


@SETTINGS
@given(body=bodies("patchProfile"), stored_mfa=st.booleans())
def test_patch_profile(body, stored_mfa):
    app = InProcessApp()
    stored = MFA if stored_mfa else {**MFA, "mfaEnabled": False, "adminCenter": {"mode": "default"}}
    view = app.services.profiles.create_profile(T, profile_input(stored), correlation_id="c")
    answer = app.call("patchProfile", raw=json.dumps(body).encode(),
                      headers={"If-Match": view.profile.etag, "content-type": "application/merge-patch+json"},
                      tenantId=T, profileId=view.profile.id)
    # The merged profile must pass the admin-center rules: with the stored values, a patch the
    # schema accepts can still break them (e.g. mfaEnabled true on a default admin center); and the
    # app profiles' fields are not fields of this stored MFA/common profile.
    assert_agree("patchProfile", body, answer, state_rule=lambda errors: errors and all(
        e["field"].startswith("adminCenter") or (e["code"] == "notAllowed" and e["field"] in APP_FIELDS)
        for e in errors))


APP_FIELDS = ("clientId", "workload", "sharePointUrl")


@SETTINGS
@given(body=bodies("migrateProfile"))
def test_migrate_profile(body):
    app = InProcessApp()
    view = app.services.profiles.create_profile(T, profile_input(MFA), correlation_id="c")
    answer = app.call("migrateProfile", raw=json.dumps(body).encode(), tenantId=T, profileId=view.profile.id)
    assert_agree("migrateProfile", body, answer, state_rule=pfx_rule)


@SETTINGS
@given(body=bodies("rotateProfileCertificate"))
def test_rotate_profile_certificate(body):
    app = InProcessApp()
    created = app.call("createProfile", body={"kind": "app", "name": "A", "clientId": T,
                                              "certificate": {"generate": True}}, tenantId=T).json()
    answer = app.call("rotateProfileCertificate", raw=json.dumps(body).encode(), tenantId=T,
                      profileId=created["id"])
    # The body is the certificate itself: Key Vault's refusal of a PFX is named "certificate.pfx".
    assert_agree("rotateProfileCertificate", body, answer, state_rule=pfx_rule)


@SETTINGS
@given(body=bodies("adminPortalWebhook"))
def test_webhook_envelope_the_schema_rejects_is_refused(body):
    """The signed envelope: a body the schema rejects is refused after the signature check. (The
    converse is not claimed: each event type's ``data`` has rules of its own, tested in
    ``tests/e2e/test_webhooks_api.py``.)"""
    import time

    app = InProcessApp()
    app.secrets.set_secret("webhook-p1", _password(WEBHOOK_KEY))
    raw = json.dumps(body).encode()
    ts = str(int(time.time()))
    answer = app.call("adminPortalWebhook", raw=raw, headers={
        "content-type": "application/cloudevents+json", "X-Portal-Id": "p1", "X-Signature-Timestamp": ts,
        "X-Signature": sign(WEBHOOK_KEY, ts, raw)})
    if not validator(body_schema("adminPortalWebhook")).is_valid(body):
        assert answer.status in (400, 422), (body, answer.status, answer.body[:300])
    assert answer.status != 500


def _password(value):
    from shared.domain.profile import Password

    return Password(value)


# Usually 2 s, but on rare seeds hypothesis-jsonschema's filtered object strategy for the form's
# if/then/else rules runs for minutes (a derandomized run hangs past the 300 s timeout; one CI run
# did too): a guard of the generators, not of the product, so it runs in `make test-reliability`.
@pytest.mark.slow
def test_the_generators_reach_both_sides():
    """Guard against a vacuous property: the strategies produce schema-valid and invalid bodies."""
    from hypothesis import find

    v = validator(body_schema("createProfile"))
    find(bodies("createProfile"), v.is_valid, settings=settings(max_examples=500, deadline=None))
    find(bodies("createProfile"), lambda b: not v.is_valid(b), settings=settings(max_examples=500, deadline=None))


@pytest.mark.parametrize("operation_id", [op for op, o in BY_ID.items() if o.body is not None])
def test_every_operation_with_a_body_has_a_property(operation_id):
    assert operation_id in {*STATELESS, "patchProfile", "migrateProfile", "rotateProfileCertificate",
                            "adminPortalWebhook"}
