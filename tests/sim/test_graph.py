"""Microsoft Graph: /me and role membership, and token checks with Graph's error JSON."""
from __future__ import annotations

import pytest

from .helpers import CONTOSO, GLOBAL_ADMIN, PASSWORD, SHAREPOINT_ADMIN, ropc

GRAPH = "https://graph.microsoft.com/v1.0"
C = "contoso.onmicrosoft.com"


def get(session, path, token):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return session.get(f"{GRAPH}{path}", headers=headers)


@pytest.mark.parametrize("upn, template_ids", [
    (f"admin@{C}", [GLOBAL_ADMIN]),
    (f"spadmin@{C}", [SHAREPOINT_ADMIN]),
    (f"reader@{C}", []),
])
def test_member_of_lists_directory_roles(sim, sim_session, upn, template_ids):
    token = ropc(sim_session, CONTOSO, upn, PASSWORD)["access_token"]
    me = get(sim_session, "/me", token).json()
    assert me["userPrincipalName"] == upn and me["id"]
    roles = get(sim_session, "/me/memberOf", token).json()["value"]
    assert [r["roleTemplateId"] for r in roles] == template_ids
    assert all(r["@odata.type"] == "#microsoft.graph.directoryRole" for r in roles)


def test_role_changes_are_visible(sim, sim_session):
    sim.control.patch_user(f"reader@{C}", {"roles": ["SharePoint Administrator"]})
    token = ropc(sim_session, CONTOSO, f"reader@{C}", PASSWORD)["access_token"]
    assert [r["displayName"] for r in get(sim_session, "/me/memberOf", token).json()["value"]] == [
        "SharePoint Administrator"]


@pytest.mark.parametrize("case, message", [
    ("missing", "Access token is empty."),
    ("garbage", "IDX14100: JWT is not well formed"),
    ("expired", "Access token has expired or is not yet valid."),
    ("audience", "Access token validation failure. Invalid audience."),
    ("foreign", "Access token validation failure."),
])
def test_bad_tokens_are_rejected(sim, sim_session, case, message):
    token = {
        "missing": None,
        "garbage": "not-a-jwt",
        "expired": sim.control.mint_token("https://graph.microsoft.com", upn=f"admin@{C}", expires_in=-300),
        "audience": sim.control.mint_token("https://vault.azure.net", upn=f"admin@{C}"),
        "foreign": _foreign_token(),
    }[case]
    resp = get(sim_session, "/me/memberOf", token)
    assert resp.status_code == 401
    error = resp.json()["error"]
    assert error["code"] == "InvalidAuthenticationToken" and error["message"].startswith(message)
    assert set(error["innerError"]) >= {"date", "request-id", "client-request-id"}
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def _foreign_token() -> str:
    import time

    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    return jwt.encode({"aud": "https://graph.microsoft.com", "iss": "https://sts.windows.net/x/", "exp": now + 600,
                       "upn": f"admin@{C}"}, key, algorithm="RS256")


def test_app_only_token_cannot_use_me(sim, sim_session):
    token = sim.control.mint_token("https://graph.microsoft.com", app_id="aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa")
    resp = get(sim_session, "/me", token)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "BadRequest"
