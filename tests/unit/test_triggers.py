"""The HTTP triggers called directly (``func.HttpRequest`` in, ``func.HttpResponse`` out) over fakes:
each parses with the contract, calls one service and shapes the answer the OpenAPI describes."""
import jsonschema
import pytest
from referencing import Registry, Resource

from shared.contract.openapi import document
from tests.inprocess import InProcessApp

T = "11111111-1111-4111-8111-111111111111"
OTHER = "22222222-2222-4222-8222-222222222222"
PROFILE = {"name": "Backup", "username": "admin@contoso.onmicrosoft.com", "password": "Canary-Pw-9d1!"}


@pytest.fixture
def app():
    return InProcessApp()


def check(name, body):
    """``body`` validates against the component schema ``name`` of the generated document."""
    registry = Registry().with_resource("urn:api", Resource.from_contents(
        {**document(), "$schema": "https://json-schema.org/draft/2020-12/schema"}))
    jsonschema.Draft202012Validator({"$ref": f"urn:api#/components/schemas/{name}"}, registry=registry).validate(body)


def test_create_get_patch_delete_profile(app):
    created = app.call("createProfile", body=PROFILE, tenantId=T)
    assert created.status == 201 and "Canary-Pw-9d1!" not in created.body.decode()
    profile = created.json()
    check("Profile", profile)
    assert created.headers["Location"] == f"/api/tenants/{T}/profiles/{profile['id']}"
    assert created.headers["ETag"] == profile["etag"] and created.headers["x-correlation-id"]
    got = app.call("getProfile", tenantId=T, profileId=profile["id"])
    assert got.status == 200 and got.json()["name"] == "Backup"
    assert app.call("getProfile", tenantId=OTHER, profileId=profile["id"]).status == 404
    patched = app.call("patchProfile", body={"description": "nightly"}, headers={"If-Match": profile["etag"]},
                       tenantId=T, profileId=profile["id"])
    assert patched.status == 200 and patched.json()["description"] == "nightly"
    stale = app.call("deleteProfile", headers={"If-Match": profile["etag"]}, tenantId=T, profileId=profile["id"])
    assert stale.status == 412
    gone = app.call("deleteProfile", headers={"If-Match": patched.json()["etag"]}, tenantId=T,
                    profileId=profile["id"])
    assert gone.status == 204 and app.call("getProfile", tenantId=T, profileId=profile["id"]).status == 404


@pytest.mark.parametrize("headers", [{}, {"If-Match": ""}])
def test_patch_without_an_etag_is_428(app, headers):
    profile = app.call("createProfile", body=PROFILE, tenantId=T).json()
    r = app.call("patchProfile", body={"description": "x"}, headers=headers, tenantId=T, profileId=profile["id"])
    assert r.status == 428 and r.headers["Content-Type"].startswith("application/problem+json")


def test_field_errors_are_one_problem_naming_every_field(app):
    r = app.call("createProfile", body={"username": "", "mfaEnabled": True, "colour": "red"}, tenantId=T)
    assert r.status == 422
    check("Problem", r.json())
    assert {e["field"] for e in r.json()["errors"]} == {"name", "username", "password", "adminCenter.mode",
                                                          "colour"}
    assert app.profiles.rows == {} and app.secrets.versions == {}


@pytest.mark.parametrize("raw, status, slug", [
    (b"{not json", 400, "malformed-json"), (b"\xff\xfe", 400, "malformed-json"),
    (b"[" * 10_000 + b"]" * 10_000, 400, "malformed-json"), (b'{"name": ' + b"9" * 5000 + b"}", 400, "malformed-json"),
    (b"[]", 422, "validation"), (b"", 422, "validation"),
])
def test_hostile_bodies_are_problems_not_500s(app, raw, status, slug):
    r = app.call("createProfile", raw=raw, tenantId=T)
    assert (r.status, r.json()["type"].rsplit("/", 1)[1]) == (status, slug)


def test_unsupported_media_type_is_415(app):
    r = app.call("createProfile", body=PROFILE, headers={"content-type": "text/plain"}, tenantId=T)
    assert r.status == 415


def test_validation_test_of_form_values_stores_nothing(app):
    r = app.call("validationTest", body={"username": "admin@contoso.onmicrosoft.com", "password": "pw"}, tenantId=T)
    assert r.status == 200 and r.json()["status"] == "passed"
    check("ValidationOutcome", r.json())
    assert app.profiles.rows == {} and app.history.records == [] and app.publisher.published == []


def test_validate_saved_profile_stores_publishes_and_lists_history(app):
    profile = app.call("createProfile", body=PROFILE, tenantId=T).json()
    r = app.call("validateProfile", tenantId=T, profileId=profile["id"])
    assert r.status == 200 and r.json()["recordId"]
    check("ValidationResult", r.json())
    assert [p.record_id for p in app.publisher.published] == [r.json()["recordId"]]
    history = app.call("listValidations", tenantId=T, profileId=profile["id"])
    check("ValidationHistory", history.json())
    assert [i["recordId"] for i in history.json()["items"]] == [r.json()["recordId"]]
    assert app.call("listValidations", tenantId=OTHER, profileId=profile["id"]).status == 404


def test_list_profiles_query_is_checked(app):
    r = app.call("listProfiles", params={"kind": "x", "pageSize": "0"}, tenantId=T)
    assert r.status == 422 and {e["field"] for e in r.json()["errors"]} == {"kind", "pageSize"}
    app.call("createProfile", body=PROFILE, tenantId=T)
    page = app.call("listProfiles", params={"pageSize": "10", "code": "function-key"}, tenantId=T)
    check("ProfilePage", page.json())
    assert [p["name"] for p in page.json()["items"]] == ["Backup"]


def test_job_request_takes_exactly_one_selection(app):
    assert app.call("createValidationJob", body={"all": True, "filter": {"lastStatus": "failed"}},
                    tenantId=T).status == 422
    assert app.call("createValidationJob", body={"all": False}, tenantId=T).status == 422
    r = app.call("createValidationJob", body={"filter": {"lastStatus": "never"}}, tenantId=T)
    assert r.status == 202 and r.headers["Location"].endswith(r.json()["id"])
    check("Job", r.json())
    job = app.call("getValidationJob", tenantId=T, jobId=r.json()["id"])
    assert job.status == 200 and job.json()["state"] == "completed"


def test_pool_lease_seconds_is_an_integer_as_json_schema_counts_them(app):
    mfa = {**PROFILE, "mfaEnabled": True, "password": "qwertyuiopasdfgh",
           "adminCenter": {"mode": "custom", "url": "https://contoso-admin.sharepoint.com"}}
    pid = app.call("createProfile", body=mfa, tenantId=T).json()["id"]
    assert app.call("putAccountPool", body={"members": [pid]}, tenantId=T).status == 200
    assert app.call("leasePoolMember", body={"leaseSeconds": "30"}, tenantId=T).status == 422
    assert app.call("leasePoolMember", body={"leaseSeconds": True}, tenantId=T).status == 422
    lease = app.call("leasePoolMember", body={"leaseSeconds": 30.0}, tenantId=T)
    assert lease.status == 201
    check("Lease", lease.json())
    released = app.call("releasePoolMember", body={"retryAfterSeconds": 60}, tenantId=T,
                        leaseId=lease.json()["leaseId"])
    assert released.status == 200 and released.json()["restUntil"]
    pool = app.call("getAccountPool", tenantId=T)
    check("Pool", pool.json())
    assert pool.json()["members"][0]["resting"] is True


def test_reserved_ip_addresses_json_csv_and_an_unknown_format(app):
    assert app.call("reservedIpAddresses").json()["ranges"][0]["cidr"] == "203.0.113.0/28"
    csv = app.call("reservedIpAddresses", params={"format": "csv"})
    assert csv.headers["Content-Type"].startswith("text/csv") and csv.body.startswith(b"cidr,ipVersion")
    bad = app.call("reservedIpAddresses", params={"format": "xml"})
    assert bad.status == 422 and bad.json()["errors"][0]["field"] == "format"


def test_health_pings_every_dependency(app):
    ok = app.call("health")
    check("Health", ok.json())
    assert ok.status == 200 and set(ok.json()["dependencies"]) == {"table", "queue", "keyVault"}
    app.secrets.down = True
    down = app.call("health")
    assert down.status == 503 and down.json()["dependencies"]["keyVault"]["status"] == "down"


def test_openapi_is_served(app):
    r = app.call("openapi")
    assert r.status == 200 and r.json()["openapi"] == "3.1.0"


def test_a_dependency_down_is_503_with_retry_after_and_nothing_written(app):
    app.secrets.down = True
    r = app.call("createProfile", body=PROFILE, tenantId=T)
    assert r.status == 503 and r.headers["Retry-After"] and app.profiles.rows == {}


# --- issue 12: no 500 from any input; body limits from one place (shared.contract.base)

@pytest.mark.parametrize("raw, status, slug", [
    (b'{"name": "' + b"x" * (600 * 1024) + b'"}', 413, "payload-too-large"),
    (b'{"a":' * 17 + b"1" + b"}" * 17, 400, "malformed-json"),
    (b'{"name": 123456789012345678901}', 400, "malformed-json"),
])
def test_body_limits_are_problems(app, raw, status, slug):
    for operation, params in (("createProfile", {"tenantId": T}), ("putAccountPool", {"tenantId": T}),
                              ("adminPortalWebhook", {})):
        r = app.call(operation, raw=raw, **params)
        assert (r.status, r.json()["type"].rsplit("/", 1)[1]) == (status, slug), operation
        assert r.headers["x-correlation-id"]


@pytest.mark.parametrize("value", ["a%2Fb", "a/b", T + "\n", T + "%2F", "..", "x" * 5000])
def test_odd_route_ids_are_404_before_storage(app, value):
    for operation, params in (("getProfile", {"tenantId": T, "profileId": value}),
                              ("getProfile", {"tenantId": value, "profileId": T}),
                              ("getValidationJob", {"tenantId": T, "jobId": value}),
                              ("releasePoolMember", {"tenantId": T, "leaseId": value})):
        r = app.call(operation, **params)
        assert r.status == 404 and r.json()["type"].endswith("/invalid-path"), (operation, value)


def test_the_real_continuation_token_decoder_refuses_what_it_did_not_issue():
    from shared.adapters.table_profile_repository import _decode_token, _encode_token
    from shared.domain.errors import InvalidInput

    good = {"PartitionKey": T, "RowKey": "r"}
    assert _decode_token(_encode_token(good)) == good
    for token in ("MQ", "W10", "bnVsbA", "!!!", _encode_token({"PartitionKey": {"a": 1}}),
                  _encode_token({"PartitionKey": "a\r\nX-Evil: 1"}), _encode_token({"Other": "x"}), "e" * 4000):
        with pytest.raises(InvalidInput):
            _decode_token(token)


def test_odd_webhook_headers_are_401_not_500(app):
    for ts in ("9" * 5000, "²"):
        r = app.call("adminPortalWebhook", raw=b"{}", headers={"x-portal-id": "p1", "x-signature-timestamp": ts,
                                                               "x-signature": "sha256=" + "0" * 64})
        assert r.status == 401 and r.json()["detail"] == "The request is not signed by a portal this service knows."


def test_a_hostile_correlation_id_is_replaced(app):
    r = app.call("getProfile", headers={"x-correlation-id": "abc\r\nSet-Cookie: x=1"}, tenantId=T, profileId=T)
    assert "\n" not in r.headers["x-correlation-id"] and r.headers["x-correlation-id"] != "abc"


def test_the_largest_body_the_contract_accepts_is_within_the_size_limit(app):
    """A job over the most profile ids the schema allows is accepted, not refused as too large."""
    import json
    import uuid

    from shared.domain.jobs import MAX_PROFILE_IDS

    body = json.dumps({"profileIds": [str(uuid.uuid4()) for _ in range(MAX_PROFILE_IDS)]}).encode()
    r = app.call("createValidationJob", raw=body, tenantId=T)
    assert r.status == 202 and r.json()["total"] == MAX_PROFILE_IDS
