"""Signed admin-portal webhooks through HTTP, with the portal key in the simulator's Key Vault."""
import json
import time
import uuid

import pytest

from shared.services.webhooks import sign
from tests.fixtures.app import CANARY_PASSWORD, CONTOSO, unique

PORTAL = "portal-e2e"
KEY = "e2e-portal-signing-key"


@pytest.fixture
def portal_key(api, app_settings):
    """Store the portal's HMAC key as Key Vault secret webhook-{portalId}, the way an operator does."""
    from shared.bootstrap import key_vault_client
    from shared.config import Settings

    key_vault_client(Settings.from_env(app_settings)).set_secret(f"webhook-{PORTAL}", KEY)
    return KEY


def send(api, event: dict, *, key=KEY, ts=None, portal=PORTAL):
    body = json.dumps(event).encode()
    ts = str(int(time.time()) if ts is None else ts)
    return api.post("/api/webhooks/admin-portal", data=body, headers={
        "content-type": "application/cloudevents+json", "X-Portal-Id": portal, "X-Signature-Timestamp": ts,
        "X-Signature": sign(key, ts, body), "x-functions-key": ""})


def event(etype, data, eid=None):
    return {"specversion": "1.0", "id": eid or str(uuid.uuid4()), "source": f"/portals/{PORTAL}", "type": etype,
            "datacontenttype": "application/json", "data": data}


def test_upsert_replay_and_delete(api, portal_key, assert_schema, tenant):
    pid = str(uuid.uuid4())
    upsert = event("com.m365profiles.profile.upserted", {"tenantId": tenant, "profileId": pid, "profile": {
        "name": unique("from portal"), "username": "admin@contoso.onmicrosoft.com", "password": CANARY_PASSWORD}})
    first = send(api, upsert)
    assert first.status_code == 202, first.text
    assert_schema("WebhookResult", first.json())
    assert first.json()["result"]["created"] is True
    replay = send(api, upsert)  # the same event id again: a no-op
    assert replay.status_code == 200 and replay.json()["duplicate"] is True
    assert api.get(f"/api/tenants/{tenant}/profiles/{pid}").json()["username"] == "admin@contoso.onmicrosoft.com"
    patch = event("com.m365profiles.profile.upserted", {"tenantId": tenant, "profileId": pid,
                                                        "profile": {"description": "set by the portal"}})
    assert send(api, patch).json()["result"]["created"] is False
    assert api.get(f"/api/tenants/{tenant}/profiles/{pid}").json()["description"] == "set by the portal"
    gone = send(api, event("com.m365profiles.profile.deleted", {"tenantId": tenant, "profileId": pid}))
    assert gone.status_code == 202 and gone.json()["result"]["deleted"] is True
    assert api.get(f"/api/tenants/{tenant}/profiles/{pid}").status_code == 404
    assert CANARY_PASSWORD not in first.text + replay.text + gone.text


def test_validation_requested_creates_a_job(api, portal_key, tenant):
    pid = api.post(f"/api/tenants/{tenant}/profiles", json={
        "name": unique("hook"), "username": "admin@contoso.onmicrosoft.com", "password": "Demo-Passw0rd!"}).json()["id"]
    r = send(api, event("com.m365profiles.validation.requested", {"tenantId": tenant, "profileIds": [pid]}))
    assert r.status_code == 202, r.text
    job = api.get(r.json()["result"]["location"]).json()
    assert job["total"] == 1 and job["reason"] == "webhook"


@pytest.mark.parametrize("tamper", ["signature", "key", "stale", "future", "portal"])
def test_bad_signatures_and_stale_timestamps_are_401(api, portal_key, tamper):
    e = event("com.m365profiles.profile.deleted", {"tenantId": CONTOSO, "profileId": str(uuid.uuid4())})
    kwargs = {"signature": {}, "key": {"key": "wrong"}, "stale": {"ts": int(time.time()) - 301},
              "future": {"ts": int(time.time()) + 301}, "portal": {"portal": "unknown-portal"}}[tamper]
    if tamper == "signature":
        body = json.dumps(e).encode()
        r = api.post("/api/webhooks/admin-portal", data=body, headers={
            "content-type": "application/cloudevents+json", "X-Portal-Id": PORTAL,
            "X-Signature-Timestamp": str(int(time.time())), "X-Signature": "sha256=" + "0" * 64})
    else:
        r = send(api, e, **kwargs)
    assert r.status_code == 401 and r.headers["Content-Type"].startswith("application/problem+json")


def test_not_a_cloudevent_is_422(api, portal_key):
    r = send(api, {"hello": "world"})
    assert r.status_code == 422


def test_key_rotation_old_and_new_versions_both_verify(api, app_settings, portal_key, tenant):
    from shared.bootstrap import key_vault_client
    from shared.config import Settings

    portal = "portal-rotation"
    client = key_vault_client(Settings.from_env(app_settings))
    client.set_secret(f"webhook-{portal}", "old-key")
    client.set_secret(f"webhook-{portal}", "new-key")
    e = lambda: event("com.m365profiles.profile.deleted", {"tenantId": tenant, "profileId": str(uuid.uuid4())})
    assert send(api, e(), key="old-key", portal=portal).status_code == 202
    assert send(api, e(), key="new-key", portal=portal).status_code == 202
