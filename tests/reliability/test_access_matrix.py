"""Access, route by route (issue 12, point 7): every operation of the route table without a key,
with a wrong key, and at the auth level it is registered with; every method a path does not take;
every route with an id asked for under another tenant; the signed webhook's refusals.

The routes come from ``shared.contract.routes.OPERATIONS``, so a new operation is covered without
a change here (a new id parameter needs one line in ``ids_of``).
"""
from __future__ import annotations

import json
import re
import time
import uuid

import pytest
import requests

from shared.contract.routes import OPERATIONS
from shared.services.webhooks import sign
from tests.demo import APP_PASSWORD
from tests.e2e.test_jobs_and_pool import wait_job
from tests.fixtures.app import CANARY_PASSWORD, unique
from tests.fixtures.local_host import LOCAL_KEY

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
CONTOSO_ADMIN = "https://contoso-admin.sharepoint.com"


def path_of(op, values: dict[str, str]) -> str:
    return re.sub(r"{(\w+)}", lambda m: values[m.group(1)], op.path)


def random_ids(op) -> dict[str, str]:
    return {name: str(uuid.uuid4()) for name in op.path_params()}


def assert_host_answer(response: requests.Response, status: int) -> None:
    """The Functions host's own answer (devtools/local_host/README.md): empty, no x-correlation-id."""
    assert response.status_code == status, (response.request.method, response.url, response.status_code)
    assert response.content == b"" and "Content-Type" not in response.headers, response.text[:200]
    assert "x-correlation-id" not in response.headers


# --- keys --------------------------------------------------------------------------------------

@pytest.mark.parametrize("op", OPERATIONS, ids=[op.operation_id for op in OPERATIONS])
def test_every_route_without_a_key_or_with_a_wrong_one(app_host, op):
    url = app_host.url + path_of(op, random_ids(op))
    tries = {"no key": {}, "wrong header key": {"headers": {"x-functions-key": LOCAL_KEY + "x"}},
             "wrong code": {"params": {"code": "wrong"}}, "empty key": {"headers": {"x-functions-key": ""}},
             "key of another case": {"headers": {"x-functions-key": LOCAL_KEY.upper()}}}
    for name, kwargs in tries.items():
        response = requests.request(op.method, url, timeout=30, **kwargs)
        if op.anonymous:  # the host lets it through (the webhook's own 401 is the app's, signed or not)
            assert "x-correlation-id" in response.headers, (name, response.status_code)
        else:
            assert_host_answer(response, 401)
    with_key = requests.request(op.method, url, headers={"x-functions-key": LOCAL_KEY}, timeout=30)
    assert "x-correlation-id" in with_key.headers  # the app answered (the webhook's 401 is its own)
    assert with_key.status_code != 401 or op.anonymous


def test_each_route_is_registered_at_the_level_the_openapi_says(app_host, openapi):
    """Wrong level: the host's own list of functions says each route's auth level; a route the
    OpenAPI calls protected is ``function`` (never anonymous, never admin: portals hold a function
    key), one it calls public is ``anonymous``. The host's admin API wants the master key."""
    listed = requests.get(app_host.url + "/admin/functions", headers={"x-functions-key": LOCAL_KEY}, timeout=30).json()
    levels = {}
    for fn in listed:
        trigger = next((b for b in fn["config"]["bindings"] if b.get("type") == "httpTrigger"), None)
        if trigger is not None:
            for method in trigger.get("methods") or METHODS:
                levels[(method.upper(), trigger["route"])] = str(trigger.get("authLevel", "function")).lower()
    for op in OPERATIONS:
        documented = openapi["paths"][op.path][op.method.lower()].get("security") != []
        assert levels[(op.method, op.route)] == ("function" if documented else "anonymous"), op.operation_id
    for path in ("/admin/functions", "/admin/host/status", "/admin/functions/revalidate"):
        assert_host_answer(requests.get(app_host.url + path, timeout=30), 401)
        assert_host_answer(requests.post(app_host.url + path, headers={"x-functions-key": "wrong"}, timeout=30), 401)


def test_every_method_a_path_does_not_take_is_the_hosts_404(app_host):
    taken: dict[str, set[str]] = {}
    for op in OPERATIONS:
        taken.setdefault(op.path, set()).add(op.method)
    tried = 0
    for op in OPERATIONS:
        for method in sorted(set(METHODS + ("HEAD", "OPTIONS")) - taken[op.path]):
            for headers in ({}, {"x-functions-key": LOCAL_KEY}):
                assert_host_answer(requests.request(method, app_host.url + path_of(op, random_ids(op)),
                                                    headers=headers, timeout=30), 404)
                tried += 1
    assert_host_answer(requests.get(app_host.url + "/api/nowhere", headers={"x-functions-key": LOCAL_KEY}), 404)
    print(f"{tried} wrong-method requests")


def test_the_openapi_documents_the_hosts_own_answers(openapi):
    host = {a["status"]: a for a in openapi["components"]["x-host-answers"]}
    assert {401, 404} <= set(host) and "not with this method" in host[404]["when"]
    assert all("no x-correlation-id" in a["headers"] and a["body"] == "empty" for a in host.values())
    for op in OPERATIONS:
        if not op.anonymous:
            answer = openapi["paths"][op.path][op.method.lower()]["responses"]["401"]
            assert "content" not in answer and "no x-correlation-id" in answer["description"]
    lease = openapi["paths"]["/api/tenants/{tenantId}/account-pool/leases"]["post"]["responses"]["429"]
    assert "client condition" in lease["description"] and "Retry-After" in lease["headers"]


# --- tenants -----------------------------------------------------------------------------------

@pytest.fixture
def tenant_a_data(api, tenant):
    """A profile (MFA, in the pool, leased), a job and a validation of tenant A."""
    name = unique("tenant A only")
    created = api.post(f"/api/tenants/{tenant}/profiles", json={
        "name": name, "description": "secret-ish description of A", "mfaEnabled": True,
        "username": "mfa@contoso.onmicrosoft.com", "password": APP_PASSWORD,
        "adminCenter": {"mode": "custom", "url": CONTOSO_ADMIN}})
    assert created.status_code == 201, created.text
    profile = created.json()
    assert api.post(f"/api/tenants/{tenant}/profiles/{profile['id']}/validate").status_code == 200
    assert api.put(f"/api/tenants/{tenant}/account-pool", json={"members": [profile["id"]]}).status_code == 200
    lease = api.post(f"/api/tenants/{tenant}/account-pool/leases", json={"leaseSeconds": 120})
    assert lease.status_code == 201, lease.text
    job = api.post(f"/api/tenants/{tenant}/validation-jobs", json={"profileIds": [profile["id"]]})
    assert job.status_code == 202, job.text
    wait_job(api, tenant, job.json()["id"], timeout=60)
    return {"tenant": tenant, "profile": api.get(f"/api/tenants/{tenant}/profiles/{profile['id']}").json(),
            "profileId": profile["id"], "jobId": job.json()["id"], "leaseId": lease.json()["leaseId"], "name": name}


#: a body each operation accepts, so that only the tenant decides its answer
BODIES = {"patchProfile": {"description": "changed from tenant B"}, "releasePoolMember": {},
          "leasePoolMember": {"leaseSeconds": 60},
          "migrateProfile": {"clientId": "c0ffee00-0000-4000-8000-000000000001"}}


def test_ids_of_tenant_a_asked_for_under_tenant_b_are_404_and_never_data(api, tenant_a_data, tenant_alias):
    a = tenant_a_data
    b = tenant_alias()
    secrets_of_a = (a["name"], "secret-ish description of A", a["profile"]["etag"], APP_PASSWORD,
                    "mfa@contoso.onmicrosoft.com")
    with_ids = [op for op in OPERATIONS if set(op.path_params()) - {"tenantId"}]
    assert {"getProfile", "patchProfile", "deleteProfile", "validateProfile", "listValidations",
            "getValidationJob", "releasePoolMember"} <= {op.operation_id for op in with_ids}
    for op in with_ids:
        values = {"tenantId": b, **{k: a[k] for k in op.path_params() if k != "tenantId"}}
        headers = {"If-Match": a["profile"]["etag"]}
        kwargs = {"json": BODIES[op.operation_id]} if op.operation_id in BODIES else {}
        response = api.request(op.method, path_of(op, values), headers=headers, **kwargs)
        assert response.status_code == 404, (op.operation_id, response.status_code, response.text[:300])
        assert not any(s in response.text for s in secrets_of_a), (op.operation_id, response.text[:300])
    # tenant-wide routes of B show nothing of A, and cannot reach A's profile
    listed = api.get(f"/api/tenants/{b}/profiles").json()
    assert a["profileId"] not in json.dumps(listed)
    assert a["profileId"] not in api.get(f"/api/tenants/{b}/account-pool").text
    assert api.put(f"/api/tenants/{b}/account-pool", json={"members": [a["profileId"]]}).status_code in (404, 422)
    assert api.post(f"/api/tenants/{b}/account-pool/leases").status_code in (404, 429)
    history = api.get(f"/api/tenants/{a['tenant']}/profiles/{a['profileId']}/validations").json()["items"]
    job = api.post(f"/api/tenants/{b}/validation-jobs", json={"profileIds": [a["profileId"]]})
    if job.status_code == 202:  # accepted as an id; the item must end as not found in B, A untouched
        done = wait_job(api, b, job.json()["id"], timeout=60)
        assert (done["passed"], done["failed"], done["errors"]) == (0, 0, 1), done
        assert not any(s in json.dumps(done) for s in secrets_of_a)
        assert api.get(f"/api/tenants/{a['tenant']}/profiles/{a['profileId']}/validations").json()["items"] == history
    else:
        assert job.status_code in (404, 422), job.text
    # and A's data is as it was
    after = api.get(f"/api/tenants/{a['tenant']}/profiles/{a['profileId']}")
    assert after.status_code == 200 and after.json()["etag"] == a["profile"]["etag"]
    assert api.get(f"/api/tenants/{a['tenant']}/validation-jobs/{a['jobId']}").status_code == 200


# --- the webhook -------------------------------------------------------------------------------

PORTAL = "portal-bound"
KEY = "access-matrix-portal-key"
WEBHOOK = "/api/webhooks/admin-portal"
WINDOW = 300  # WEBHOOK_REPLAY_WINDOW_SECONDS (its default)


@pytest.fixture(scope="module")
def bound_host(app_settings, m365sim, tmp_path_factory):
    """A host whose only portal may act for one tenant (the session's host grants every tenant)."""
    from devtools.local_host import start_local_host_process
    from shared.bootstrap import key_vault_client
    from shared.config import Settings
    from tests.fixtures.local_host import host_json

    granted = str(uuid.uuid4())
    m365sim.control.add_tenant_alias(granted, "11111111-1111-4111-8111-111111111111")
    settings = dict(app_settings, WEBHOOK_PORTALS=f"{PORTAL}={granted}")
    key_vault_client(Settings.from_env(settings)).set_secret(f"webhook-{PORTAL}", KEY)
    path = tmp_path_factory.mktemp("bound") / "host.json"
    path.write_text(json.dumps(host_json()))
    process = start_local_host_process(env=settings, host_json=path, timeout=60)
    try:
        yield process, granted
    finally:
        process.stop()
        try:
            m365sim.control.remove_tenant_alias(granted)
        except Exception:  # noqa: BLE001 - a test may have reset the simulator
            pass


def signed(body: bytes, *, key=KEY, ts=None, portal=PORTAL, signature=None) -> dict:
    ts = str(int(time.time()) if ts is None else ts)
    return {"content-type": "application/cloudevents+json", "X-Portal-Id": portal, "X-Signature-Timestamp": ts,
            "X-Signature": signature or sign(key, ts, body)}


def upsert(tenant: str, pid: str, name: str) -> bytes:
    return json.dumps({"specversion": "1.0", "id": str(uuid.uuid4()), "source": f"/portals/{PORTAL}",
                       "type": "com.m365profiles.profile.upserted", "datacontenttype": "application/json",
                       "data": {"tenantId": tenant, "profileId": pid, "profile": {
                           "name": name, "username": "admin@contoso.onmicrosoft.com",
                           "password": CANARY_PASSWORD}}}).encode()


def test_webhook_refusals(bound_host, sim):
    process, granted = bound_host
    url = process.url + WEBHOOK
    other = str(uuid.uuid4())
    pid = str(uuid.uuid4())
    body = upsert(granted, pid, unique("from the bound portal"))

    def post(data: bytes, headers: dict) -> requests.Response:
        return requests.post(url, data=data, headers=headers, timeout=30)

    refusals = {
        "bad signature": post(body, signed(body, signature="sha256=" + "0" * 64)),
        "wrong key": post(body, signed(body, key="not the key")),
        "signature of another body": post(body, {**signed(body), "X-Signature": signed(body + b" ")["X-Signature"]}),
        "stale timestamp": post(body, signed(body, ts=int(time.time()) - WINDOW - 30)),
        "future timestamp": post(body, signed(body, ts=int(time.time()) + WINDOW + 30)),
        "odd timestamp": post(body, signed(body, ts="9" * 5000)),
        "unknown portal": post(body, signed(body, portal="portal-nobody")),
        "wrong tenant": post(upsert(other, pid, "x"), signed(upsert(other, pid, "x"))),
    }
    for name, response in refusals.items():
        assert response.status_code == 401, (name, response.status_code, response.text[:300])
        assert response.headers["Content-Type"].startswith("application/problem+json"), name
        assert "x-correlation-id" in response.headers and CANARY_PASSWORD not in response.text
    # unknown portals cost no Key Vault read
    sim.control.clear_counters()
    for i in range(20):
        assert post(body, signed(body, portal=f"portal-unknown-{i}")).status_code == 401
    assert sim.control.counters().get("keyvault", {}).get("requests", 0) == 0
    # oversized: refused before any signature work
    big = b'{"x": "' + b"a" * (600 * 1024) + b'"}'
    assert post(big, signed(big)).status_code == 413
    # the genuine event works once; its replay is a no-op
    headers = signed(body)
    first, replay = post(body, headers), post(body, headers)
    assert (first.status_code, replay.status_code) == (202, 200), (first.text, replay.text)
    assert first.json()["result"]["created"] is True and replay.json()["duplicate"] is True
    profile = requests.get(f"{process.url}/api/tenants/{granted}/profiles/{pid}",
                           headers={"x-functions-key": LOCAL_KEY}, timeout=30)
    assert profile.status_code == 200
    # nothing was written for the tenant the portal may not act for
    assert requests.get(f"{process.url}/api/tenants/{other}/profiles/{pid}", headers={"x-functions-key": LOCAL_KEY},
                        timeout=30).status_code == 404
