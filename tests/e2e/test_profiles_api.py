"""The profiles API through HTTP on the local host, with Azurite and the simulator's Key Vault."""
import json

import pytest

from tests.fixtures.app import CANARY_APP_PASSWORD, CANARY_PASSWORD, CONTOSO, FABRIKAM, unique

MFA_URL = "https://contoso-admin.sharepoint.com"


def body(**over):
    b = {"name": unique("profile"), "description": "backup account", "mfaEnabled": False,
         "username": "admin@contoso.onmicrosoft.com", "password": CANARY_PASSWORD}
    b.update(over)
    return b


def mfa_body(**over):
    return body(mfaEnabled=True, username="mfa@contoso.onmicrosoft.com", password=CANARY_APP_PASSWORD,
                adminCenter={"mode": "custom", "url": MFA_URL}, **over)


def create(api, tenant, **over):
    r = api.post(f"/api/tenants/{tenant}/profiles", json=body(**over))
    assert r.status_code == 201, r.text
    return r


def test_create_get_list_and_schema(api, assert_schema, tenant):
    r = create(api, tenant)
    profile = r.json()
    assert_schema("Profile", profile)
    assert r.headers["ETag"] == profile["etag"] and r.headers["Location"].endswith(profile["id"])
    assert profile["kind"] == "common" and profile["passwordSet"] and profile["limitations"] == []
    assert profile["adminCenter"]["effectiveUrl"] == MFA_URL
    got = api.get(f"/api/tenants/{tenant}/profiles/{profile['id']}")
    assert got.status_code == 200 and got.json()["name"] == profile["name"]
    assert_schema("ProfilePage", api.get(f"/api/tenants/{tenant}/profiles").json())
    assert "x-correlation-id" in got.headers


@pytest.mark.parametrize("bad, field", [
    ({"name": ""}, "name"), ({"name": "n" * 129}, "name"), ({"username": "nope"}, "username"),
    ({"password": None}, "password"), ({"description": "d" * 1001}, "description"),
    ({"mfaEnabled": "yes"}, "mfaEnabled"), ({"adminCenter": {"mode": "custom"}}, "adminCenter.url"),
    ({"adminCenter": {"mode": "custom", "url": "http://x.sharepoint.com"}}, "adminCenter.url"),
    ({"mfaEnabled": True}, "adminCenter.mode"), ({"extra": 1}, "extra"),
])
def test_each_field_rule_is_a_problem_naming_the_field(api, assert_schema, bad, field):
    b = {k: v for k, v in {**body(), **bad}.items() if v is not None}
    r = api.post(f"/api/tenants/{CONTOSO}/profiles", json=b)
    assert r.status_code == 422 and r.headers["Content-Type"].startswith("application/problem+json")
    assert_schema("Problem", r.json())
    assert field in {e["field"] for e in r.json()["errors"]}


def test_all_violations_at_once_and_malformed_json(api):
    r = api.post(f"/api/tenants/{CONTOSO}/profiles", json={"mfaEnabled": True})
    assert {e["field"] for e in r.json()["errors"]} == {"name", "username", "password", "adminCenter.mode"}
    r = api.post(f"/api/tenants/{CONTOSO}/profiles", data="{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["type"].endswith("/malformed-json")
    r = api.post("/api/tenants/not-a-guid/profiles", json=body())
    assert r.status_code == 404 and r.json()["detail"] == "tenantId must be a GUID."


def test_mfa_profile_requires_custom_url_and_shows_limitations_and_guidance(api, tenant):
    r = api.post(f"/api/tenants/{tenant}/profiles", json=mfa_body())
    p = r.json()
    assert r.status_code == 201 and p["kind"] == "mfa"
    assert p["limitations"] == ["NO_INVITE_M365_USERS", "CLOUD_MANAGEMENT_FEATURES_LIMITED"]
    assert any("Global Administrator account or SharePoint Administrator account" in g for g in p["guidance"])


def test_clearing_mfa_converts_to_common_with_history(api, tenant):
    p = api.post(f"/api/tenants/{tenant}/profiles", json=mfa_body()).json()
    r = api.patch(f"/api/tenants/{tenant}/profiles/{p['id']}", json={"mfaEnabled": False},
                  headers={"If-Match": p["etag"], "content-type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    q = r.json()
    assert q["kind"] == "common" and q["limitations"] == []
    assert [h["event"] for h in q["history"]] == ["created", "converted"]


def test_password_rotation_writes_a_new_version_and_drops_the_old_reference(api, m365sim, azurite, tenant):
    from azure.data.tables import TableServiceClient

    p = create(api, tenant).json()
    table = TableServiceClient.from_connection_string(azurite.connection_string).get_table_client("Profiles")
    before = table.get_entity(tenant, p["id"])
    r = api.patch(f"/api/tenants/{tenant}/profiles/{p['id']}", json={"password": CANARY_PASSWORD + "2"},
                  headers={"If-Match": p["etag"]})
    assert r.status_code == 200 and r.json()["passwordUpdatedAt"] > p["passwordUpdatedAt"]
    after = table.get_entity(tenant, p["id"])
    assert after["SecretName"] == before["SecretName"] == f"profile-{tenant}-{p['id']}"
    assert after["SecretVersion"] != before["SecretVersion"]
    assert m365sim.control.vault("demo")[after["SecretName"]] == {"versions": 2, "deleted": False}


def test_etags_428_and_412(api, tenant):
    p = create(api, tenant).json()
    url = f"/api/tenants/{tenant}/profiles/{p['id']}"
    assert api.patch(url, json={"description": "x"}).status_code == 428
    fresh = api.patch(url, json={"description": "x"}, headers={"If-Match": p["etag"]})
    assert fresh.status_code == 200
    stale = api.patch(url, json={"description": "y"}, headers={"If-Match": p["etag"]})
    assert stale.status_code == 412 and stale.json()["type"].endswith("/precondition-failed")
    assert api.delete(url).status_code == 428
    assert api.delete(url, headers={"If-Match": p["etag"]}).status_code == 412
    assert api.delete(url, headers={"If-Match": fresh.headers["ETag"]}).status_code == 204
    assert api.get(url).status_code == 404


def test_delete_soft_deletes_the_secret(api, m365sim, tenant):
    p = create(api, tenant).json()
    name = f"profile-{tenant}-{p['id']}"
    assert m365sim.control.vault("demo")[name]["deleted"] is False
    assert api.delete(f"/api/tenants/{tenant}/profiles/{p['id']}", headers={"If-Match": p["etag"]}).status_code == 204
    assert m365sim.control.vault("demo")[name]["deleted"] is True  # recoverable, not purged


def test_tenant_isolation(api, tenant, tenant_alias):
    other = tenant_alias(FABRIKAM)  # a second tenant id of its own (signing in to fabrikam)
    p = create(api, tenant).json()
    for method in ("get", "patch", "delete"):
        r = getattr(api, method)(f"/api/tenants/{other}/profiles/{p['id']}", json={}, headers={"If-Match": "*"})
        assert r.status_code == 404, method
    assert p["id"] not in api.get(f"/api/tenants/{other}/profiles").text


def test_names_unique_per_tenant(api, tenant, tenant_alias):
    other = tenant_alias(FABRIKAM)  # a second tenant id of its own (signing in to fabrikam)
    p = create(api, tenant).json()
    r = api.post(f"/api/tenants/{tenant}/profiles", json=body(name=p["name"].upper()))
    assert r.status_code == 409 and r.json()["errors"][0]["field"] == "name"
    assert api.post(f"/api/tenants/{other}/profiles", json=body(name=p["name"])).status_code == 201


def test_key_vault_outage_leaves_no_half_write(api, sim, azurite, tenant):
    from azure.data.tables import TableServiceClient

    name = unique("outage")
    sim.control.add_fault("keyvault", status=503, retryAfter=9)
    r = api.post(f"/api/tenants/{tenant}/profiles", json=body(name=name))
    assert r.status_code == 503 and r.headers["Retry-After"] and r.json()["retryAfterSeconds"] >= 1
    table = TableServiceClient.from_connection_string(azurite.connection_string).get_table_client("Profiles")
    assert not [e for e in table.query_entities("Name eq @n", parameters={"n": name})]
    sim.control.clear_faults()
    p = create(api, tenant).json()
    sim.control.add_fault("keyvault", status=503, retryAfter=9)
    r = api.patch(f"/api/tenants/{tenant}/profiles/{p['id']}", json={"password": "new-one", "description": "z"},
                  headers={"If-Match": p["etag"]})
    assert r.status_code == 503
    sim.control.clear_faults()
    unchanged = api.get(f"/api/tenants/{tenant}/profiles/{p['id']}").json()
    assert unchanged["etag"] == p["etag"] and unchanged["description"] == p["description"]


def test_paging_and_filters(api, tenant):
    for i in range(5):
        create(api, tenant=tenant)
    api.post(f"/api/tenants/{tenant}/profiles", json=mfa_body())
    first = api.get(f"/api/tenants/{tenant}/profiles", params={"pageSize": 4}).json()
    assert len(first["items"]) == 4 and first["nextLink"]
    second = api.get(first["nextLink"]).json()
    assert len(second["items"]) == 2 and second["continuationToken"] is None
    assert [p["kind"] for p in api.get(f"/api/tenants/{tenant}/profiles", params={"kind": "mfa"}).json()["items"]] == ["mfa"]
    bad = api.get(f"/api/tenants/{tenant}/profiles", params={"kind": "x", "pageSize": "0"})
    assert bad.status_code == 422 and {e["field"] for e in bad.json()["errors"]} == {"kind", "pageSize"}


def test_function_key_required(app_host):
    import requests

    r = requests.get(f"{app_host.url}/api/tenants/{CONTOSO}/profiles", timeout=10)
    assert r.status_code == 401
    assert requests.get(f"{app_host.url}/api/health", timeout=30).status_code == 200


def test_every_route_is_in_the_openapi_document(openapi):
    import json as _json

    from tests.inprocess import app_functions

    documented = {(path, method) for path, ops in openapi["paths"].items() for method in ops if method != "parameters"}
    for fn in app_functions():
        bindings = _json.loads(fn.get_function_json())["bindings"]
        for b in bindings:
            if b["type"] == "httpTrigger":
                for method in b["methods"]:
                    assert ("/api/" + b["route"], method.lower()) in documented, (b["route"], method)
