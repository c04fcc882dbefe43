"""Saved-profile validation: history, lastValidation, CloudEvents on the outcomes queue, and the
canary: a password never appears in responses, tables, queues or the host's log."""
import base64
import json

from azure.storage.queue import QueueClient
from cloudevents.core.bindings.http import HTTPMessage, from_structured_event

from tests.fixtures.app import CANARY_APP_PASSWORD, CANARY_PASSWORD, unique

APP_PW = "qwertyuiopasdfgh"
URL = "https://contoso-admin.sharepoint.com"


def outcome_events(azurite, profile_id):
    queue = QueueClient.from_connection_string(azurite.connection_string, "troubleshooting-outcomes")
    events = []
    for message in queue.peek_messages(max_messages=32):
        event = from_structured_event(HTTPMessage(headers={}, body=base64.b64decode(message.content)))
        if event.get_data()["profileId"] == profile_id:
            events.append(event)
    return events


def drain(azurite):
    from azure.core.exceptions import ResourceExistsError

    queue = QueueClient.from_connection_string(azurite.connection_string, "troubleshooting-outcomes")
    try:
        queue.create_queue()
    except ResourceExistsError:
        queue.clear_messages()


def test_validate_saved_profile_stores_history_and_publishes_one_matching_event(api, azurite, assert_schema,
                                                                                 tenant):
    drain(azurite)
    p = api.post(f"/api/tenants/{tenant}/profiles", json={
        "name": unique("mfa"), "mfaEnabled": True, "username": "mfa@contoso.onmicrosoft.com", "password": APP_PW,
        "adminCenter": {"mode": "custom", "url": URL}}).json()
    first = api.post(f"/api/tenants/{tenant}/profiles/{p['id']}/validate")
    assert first.status_code == 200, first.text
    assert_schema("ValidationOutcome", first.json())
    assert first.json()["status"] == "passed" and first.json()["userRole"] is None
    api.patch(f"/api/tenants/{tenant}/profiles/{p['id']}", json={"password": "wrongwrongwrongw"},
              headers={"If-Match": api.get(f"/api/tenants/{tenant}/profiles/{p['id']}").headers["ETag"]})
    second = api.post(f"/api/tenants/{tenant}/profiles/{p['id']}/validate").json()
    assert second["messageId"] == "INVALID_APP_PASSWORD"

    history = api.get(f"/api/tenants/{tenant}/profiles/{p['id']}/validations").json()
    assert_schema("ValidationHistory", history)
    assert [h["messageId"] for h in history["items"]] == ["INVALID_APP_PASSWORD", None]  # newest first
    profile = api.get(f"/api/tenants/{tenant}/profiles/{p['id']}").json()
    assert profile["lastValidation"]["messageId"] == "INVALID_APP_PASSWORD"

    events = outcome_events(azurite, p["id"])
    assert len(events) == 2
    by_id = {e.get_id(): e for e in events}
    for h in history["items"]:
        event = by_id[h["recordId"]]
        data = event.get_data()
        assert event.get_type() == "com.m365profiles.validation.outcome" and event.get_specversion() == "1.0"
        assert (data["status"], data["messageId"], data["tenantId"]) == (h["status"], h["messageId"], tenant)
        assert data["checks"] == h["checks"] and data["correlationId"] == h["correlationId"]


def test_canary_passwords_appear_nowhere(api, app_host, storage_dump, tenant):
    cid = "canary-correlation-1"
    common = api.post(f"/api/tenants/{tenant}/profiles", headers={"x-correlation-id": cid}, json={
        "name": unique("canary"), "username": "admin@contoso.onmicrosoft.com", "password": CANARY_PASSWORD})
    mfa = api.post(f"/api/tenants/{tenant}/profiles", json={
        "name": unique("canary-mfa"), "mfaEnabled": True, "username": "mfa@contoso.onmicrosoft.com",
        "password": CANARY_APP_PASSWORD, "adminCenter": {"mode": "custom", "url": URL}})
    responses = [common, mfa]
    for p in (common.json(), mfa.json()):
        responses.append(api.post(f"/api/tenants/{tenant}/profiles/{p['id']}/validate"))
        responses.append(api.get(f"/api/tenants/{tenant}/profiles/{p['id']}/validations"))
        responses.append(api.patch(f"/api/tenants/{tenant}/profiles/{p['id']}",
                                   json={"password": CANARY_PASSWORD + "x", "username": "bad"},
                                   headers={"If-Match": p["etag"]}))
    responses.append(api.post(f"/api/tenants/{tenant}/validation-tests", json={
        "username": "admin@contoso.onmicrosoft.com", "password": CANARY_PASSWORD}))
    responses.append(api.post(f"/api/tenants/{tenant}/validation-tests", json={
        "username": "mfa@contoso.onmicrosoft.com", "password": CANARY_APP_PASSWORD, "mfaEnabled": True,
        "adminCenter": {"mode": "custom", "url": URL}}))
    responses.append(api.post(f"/api/tenants/{tenant}/validation-jobs", json={"profileIds": [common.json()["id"]]}))
    assert all(r.status_code < 500 for r in responses)
    texts = [r.text + json.dumps(dict(r.headers)) for r in responses]
    stored = storage_dump()
    log = app_host.output
    for canary in (CANARY_PASSWORD, CANARY_APP_PASSWORD):
        assert not any(canary in t for t in texts)
        assert canary not in stored
        assert canary not in log
    assert cid in log  # the correlation id does reach the log


def test_legacy_apps_blocked_adds_the_ghost_guest_users_limitation(api, sim, tenant_alias):
    from tests.demo import NORTHWIND

    tenant = tenant_alias(NORTHWIND)  # this test's own tenant id, signing in to northwind
    p = api.post(f"/api/tenants/{tenant}/profiles", json={
        "name": unique("northwind"), "mfaEnabled": True, "username": "mfa@northwind.onmicrosoft.com",
        "password": APP_PW, "adminCenter": {"mode": "custom", "url": "https://northwind-admin.sharepoint.com"}}).json()
    assert "NO_GHOST_GUEST_USERS_RULE" not in p["limitations"]
    out = api.post(f"/api/tenants/{tenant}/profiles/{p['id']}/validate").json()
    # The simulator's date is today's: after 1 May 2026 a refused wsignin1.0 is the retirement.
    assert out["messageId"] == "LEGACY_AUTH_RETIRED"
    after = api.get(f"/api/tenants/{tenant}/profiles/{p['id']}").json()
    assert "NO_GHOST_GUEST_USERS_RULE" in after["limitations"]
    assert any("Ghost Guest Users rule" in d["text"] for d in after["limitationDetails"])
    sim.control.patch_tenant(NORTHWIND, {"legacyAuth": {"blockLegacyApps": False}})
    assert api.post(f"/api/tenants/{tenant}/profiles/{p['id']}/validate").json()["status"] == "passed"
    assert "NO_GHOST_GUEST_USERS_RULE" not in api.get(f"/api/tenants/{tenant}/profiles/{p['id']}").json()["limitations"]
