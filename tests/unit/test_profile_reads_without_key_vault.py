"""Reading a profile, and a PATCH that does not change the password, never call Key Vault: they
answer while it is down, as they answer when it is up."""
from __future__ import annotations

import pytest

from tests.inprocess import InProcessApp

T = "11111111-1111-4111-8111-111111111111"
PROFILE = {"name": "Backup", "username": "admin@contoso.onmicrosoft.com", "password": "Demo-Passw0rd!"}


@pytest.fixture
def app():
    return InProcessApp()


def test_get_and_a_patch_without_a_password_do_not_touch_key_vault(app):
    created = app.call("createProfile", body=PROFILE, tenantId=T)
    assert created.status == 201
    pid, etag = created.json()["id"], created.headers["ETag"]
    app.secrets.down = True
    got = app.call("getProfile", tenantId=T, profileId=pid)
    assert got.status == 200 and got.headers["ETag"] == etag and got.json()["passwordSet"] is True
    listed = app.call("listProfiles", tenantId=T)
    assert listed.status == 200 and [p["id"] for p in listed.json()["items"]] == [pid]
    patched = app.call("patchProfile", body={"description": "nightly"}, headers={"If-Match": etag},
                       tenantId=T, profileId=pid)
    assert patched.status == 200 and patched.json()["description"] == "nightly" and patched.headers["ETag"] != etag
    assert app.secrets.reads == 0
    # A new password is the one change that needs Key Vault: 503, nothing written.
    refused = app.call("patchProfile", body={"password": "An0ther-Passw0rd!"},
                       headers={"If-Match": patched.headers["ETag"]}, tenantId=T, profileId=pid)
    assert refused.status == 503 and refused.headers["Retry-After"]
    assert app.call("getProfile", tenantId=T, profileId=pid).headers["ETag"] == patched.headers["ETag"]
