"""App registrations (app profiles): msal's real ConfidentialClientApplication builds and signs the client
assertion from demo-app.pfx; the simulator verifies it as Entra does and answers app-only Graph and
SharePoint REST from the scenario's consent and permissions."""
from __future__ import annotations

import base64
import datetime as dt
import time
import uuid

import jwt
import msal
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from .helpers import CONTOSO, FABRIKAM, LOGIN

APP1 = "c0ffee00-0000-4000-8000-000000000001"   # consented
APP2 = "c0ffee00-0000-4000-8000-000000000002"   # no consent
GRAPH = ["https://graph.microsoft.com/.default"]
SPO = ["https://contoso.sharepoint.com/.default"]
SPO_APP_ID = "00000003-0000-0ff1-ce00-000000000000"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def demo_pfx(sim):
    """(private key PEM, certificate, SHA-1 hex thumbprint) of <state-dir>/demo-app.pfx (password demo)."""
    key, cert, _ = pkcs12.load_key_and_certificates((sim.state_dir / "demo-app.pfx").read_bytes(), b"demo")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return pem, cert, cert.fingerprint(hashes.SHA1()).hex().upper()


def other_certificate():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not registered")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return pem, cert


def app(session, client_id, credential, tenant=CONTOSO):
    return msal.ConfidentialClientApplication(client_id, authority=f"{LOGIN}/{tenant}", client_credential=credential,
                                              http_client=session, instance_discovery=False)


def cert_token(sim, session, client_id=APP1, scopes=GRAPH, tenant=CONTOSO):
    pem, _, thumb = demo_pfx(sim)
    return app(session, client_id, {"private_key": pem, "thumbprint": thumb}, tenant).acquire_token_for_client(scopes)


def claims(result):
    assert "access_token" in result, result
    return jwt.decode(result["access_token"], options={"verify_signature": False})


def assertion(sim, *, key_pem=None, thumb_sha1=None, client_id=APP1, aud=None, **times):
    pem, _, thumb = demo_pfx(sim)
    now = int(time.time())
    payload = {"aud": aud or f"{LOGIN}/{CONTOSO}/oauth2/v2.0/token", "iss": client_id, "sub": client_id,
               "jti": str(uuid.uuid4()), "nbf": now, "exp": now + 600}
    payload.update(times)
    x5t = base64.urlsafe_b64encode(bytes.fromhex(thumb_sha1 or thumb)).decode()
    return jwt.encode(payload, key_pem or pem, algorithm="RS256", headers={"x5t": x5t})


def post_assertion(session, token, client_id=APP1, scope=GRAPH[0]):
    return session.post(f"{LOGIN}/{CONTOSO}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": client_id, "scope": scope,
        "client_assertion_type": JWT_BEARER, "client_assertion": token})


def get(session, url, token, **headers):
    return session.get(url, headers=dict(headers, Authorization=f"Bearer {token}"), timeout=10)


# ------------------------------------------------------------------ the demo certificate


def test_demo_certificate_is_written_and_registered_on_both_apps(sim):
    pem, cert, thumb = demo_pfx(sim)
    assert pem.startswith("-----BEGIN PRIVATE KEY-----")
    cer = x509.load_der_x509_certificate((sim.state_dir / "demo-app.cer").read_bytes())
    assert cer == cert
    info = sim.control.generated_certificate("demo-app")
    assert info["thumbprint"] == thumb and info["thumbprintSha256"] == cert.fingerprint(hashes.SHA256()).hex().upper()
    assert "PRIVATE" not in info["pem"]
    for app_id in (APP1, APP2):
        registered = sim.control.app(app_id)
        assert [k["thumbprint"] for k in registered["keyCredentials"]] == [thumb]
        assert registered["tenantId"] == CONTOSO


# ------------------------------------------------------------------ tokens


def test_consented_app_gets_graph_and_sharepoint_roles(sim, sim_session):
    graph = claims(cert_token(sim, sim_session))
    assert graph["aud"] == "https://graph.microsoft.com" and graph["tid"] == CONTOSO and graph["appid"] == APP1
    assert graph["roles"] == ["Sites.FullControl.All", "User.Read.All"]
    assert graph["idtyp"] == "app" and graph["appidacr"] == "2" and graph["exp"] > time.time()
    spo = claims(cert_token(sim, sim_session, scopes=SPO))
    assert spo["aud"] == SPO_APP_ID and spo["roles"] == ["Sites.FullControl.All"] and spo["tid"] == CONTOSO


def test_sha256_thumbprint_header_and_ps256_are_accepted(sim, sim_session):
    """msal with public_certificate sends x5t#S256 (and x5c) and signs PS256."""
    pem, cert, _ = demo_pfx(sim)
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    result = app(sim_session, APP1, {"private_key": pem, "public_certificate": cert_pem}).acquire_token_for_client(GRAPH)
    assert claims(result)["roles"] == ["Sites.FullControl.All", "User.Read.All"]


def test_app_without_admin_consent_gets_a_token_without_roles(sim, sim_session):
    result = cert_token(sim, sim_session, APP2)
    token = claims(result)
    assert token["appid"] == APP2 and "roles" not in token
    assert "roles" not in claims(cert_token(sim, sim_session, APP2, scopes=SPO))


def test_tenant_alias_authority_and_audience(sim, sim_session, tenant):
    token = claims(cert_token(sim, sim_session, tenant=tenant))
    assert token["tid"] == CONTOSO and token["roles"]


@pytest.mark.parametrize("client_id, tenant", [(str(uuid.uuid4()), CONTOSO), (APP1, FABRIKAM)])
def test_unknown_app_is_700016(sim, sim_session, client_id, tenant):
    result = cert_token(sim, sim_session, client_id, tenant=tenant)
    assert result["error"] == "unauthorized_client" and result["error_codes"] == [700016], result
    assert f"Application with identifier '{client_id}' was not found in the directory" in result["error_description"]


def test_unregistered_certificate_is_700027_key_not_found(sim, sim_session):
    pem, cert = other_certificate()
    thumb = cert.fingerprint(hashes.SHA1()).hex().upper()
    result = app(sim_session, APP1, {"private_key": pem, "thumbprint": thumb}).acquire_token_for_client(GRAPH)
    assert result["error"] == "invalid_client" and result["error_codes"] == [700027], result
    first = result["error_description"].split("\r\n")[0]
    assert first.startswith("AADSTS700027: The certificate with identifier used to sign the client assertion is not "
                            "registered on application. [Reason - The key was not found., Thumbprint of key used by "
                            f"client: '{thumb}', Please visit the Azure Portal")
    assert f"'https://graph.microsoft.com/beta/applications/{APP1}']" in first


def test_bad_signature_is_700027_key_found_but_verification_failed(sim, sim_session):
    other_pem, _ = other_certificate()
    _, _, thumb = demo_pfx(sim)   # the registered thumbprint, signed with another key
    result = app(sim_session, APP1, {"private_key": other_pem, "thumbprint": thumb}).acquire_token_for_client(GRAPH)
    assert result["error_codes"] == [700027], result
    assert result["error_description"].startswith(
        "AADSTS700027: Client assertion contains an invalid signature. [Reason - Key was found, but use of the key to "
        f"verify the signature failed., Thumbprint of key used by client: '{thumb}', Found key 'Start=")


@pytest.mark.parametrize("times", [{"exp": int(time.time()) - 3600, "nbf": int(time.time()) - 4200},
                                   {"nbf": int(time.time()) + 3600, "exp": int(time.time()) + 4200}])
def test_assertion_outside_its_time_range_is_700024(sim, sim_session, times):
    resp = post_assertion(sim_session, assertion(sim, **times))
    body = resp.json()
    assert resp.status_code == 401 and body["error"] == "invalid_client" and body["error_codes"] == [700024], body
    assert body["error_description"].startswith("AADSTS700024: Client assertion is not within its valid time range. "
                                                "Current time: ")
    assert ", assertion valid from " in body["error_description"]


def test_assertion_for_another_audience_is_700023(sim, sim_session):
    body = post_assertion(sim_session, assertion(sim, aud=f"{LOGIN}/{FABRIKAM}/oauth2/v2.0/token")).json()
    assert body["error_codes"] == [700023], body
    # the v1 token endpoint of the same tenant is a valid audience too
    assert "access_token" in post_assertion(sim_session, assertion(sim, aud=f"{LOGIN}/{CONTOSO}/oauth2/token")).json()


def test_disabled_app_is_7000112(sim, sim_session):
    sim.control.patch_app(APP1, {"enabled": False})
    result = cert_token(sim, sim_session)
    assert result["error"] == "unauthorized_client" and result["error_codes"] == [7000112], result
    assert result["error_description"].startswith(f"AADSTS7000112: Application '{APP1}'(M365 Backup (demo)) is disabled.")
    sim.control.patch_app(APP1, {"enabled": True})
    assert "access_token" in cert_token(sim, sim_session)


def test_client_secret_where_only_certificates_are_registered_is_7000215(sim, sim_session):
    result = app(sim_session, APP1, "some-secret").acquire_token_for_client(GRAPH)
    assert result["error"] == "invalid_client" and result["error_codes"] == [7000215], result


def test_only_graph_and_the_tenants_sharepoint(sim, sim_session):
    result = cert_token(sim, sim_session, scopes=["https://vault.azure.net/.default"])
    assert result["error_codes"] == [500011], result
    result = cert_token(sim, sim_session, scopes=["https://fabrikam.sharepoint.com/.default"])
    assert result["error_codes"] == [500011], result


def test_conditional_access_for_workload_identities_blocks_with_53003(sim, sim_session):
    sim.control.add_policy("contoso.onmicrosoft.com", {"name": "Block the backup app outside the office",
                                                       "servicePrincipals": {"include": [APP1]},
                                                       "locations": {"trustedRanges": ["192.0.2.0/24"]},
                                                       "grant": "block"})
    result = cert_token(sim, sim_session)
    assert result["error"] == "invalid_grant" and result["error_codes"] == [53003], result
    assert result["suberror"] == "message_only" and "capolids" in result["claims"]
    assert "access_token" in cert_token(sim, sim_session, APP2)            # not targeted
    sim.control.patch_network({"egressIp": "192.0.2.10"})                   # inside the trusted range
    assert "access_token" in cert_token(sim, sim_session)
    sim.control.patch_network({"egressIp": "203.0.113.5"})
    sim.control.patch_policy("contoso.onmicrosoft.com", "Block the backup app outside the office",
                             {"state": "reportOnly"})
    assert "access_token" in cert_token(sim, sim_session)


def test_workload_policy_does_not_touch_user_sign_in(sim, sim_session):
    from .helpers import PASSWORD, ropc

    sim.control.add_policy(CONTOSO, {"name": "Block all workload identities", "servicePrincipals": {"include": ["All"]},
                                     "grant": "block"})
    assert "access_token" in ropc(sim_session, CONTOSO, "admin@contoso.onmicrosoft.com", PASSWORD)
    assert cert_token(sim, sim_session, APP2)["error_codes"] == [53003]


def test_scenario_rejects_a_workload_policy_on_users_too(sim):
    from devtools.m365sim import SimulatorControlError

    with pytest.raises(SimulatorControlError, match="not both"):
        sim.control.add_policy(CONTOSO, {"name": "x", "servicePrincipals": {"include": [APP1]},
                                         "users": {"include": ["All"]}, "grant": "block"})
    with pytest.raises(SimulatorControlError, match="block"):
        sim.control.add_policy(CONTOSO, {"name": "y", "servicePrincipals": {"include": [APP1]}, "grant": "mfa"})


# ------------------------------------------------------------------ resources


SITE_ROOT = "https://graph.microsoft.com/v1.0/sites/root"
SPO_WEB = "https://contoso.sharepoint.com/_api/web?$select=Title"


def test_graph_sites_root_needs_a_sites_role(sim, sim_session):
    ok = get(sim_session, SITE_ROOT, cert_token(sim, sim_session)["access_token"])
    assert ok.status_code == 200 and ok.json()["siteCollection"] == {"hostname": "contoso.sharepoint.com"}
    denied = get(sim_session, SITE_ROOT, cert_token(sim, sim_session, APP2)["access_token"])
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "AccessDenied"
    assert denied.json()["error"]["message"] == "Either scp or roles claim need to be present in the token."
    sim.control.patch_app(APP1, {"permissions": {"graph": ["User.Read.All"]}})
    token = cert_token(sim, sim_session)["access_token"]
    other = get(sim_session, SITE_ROOT, token)
    assert other.status_code == 403 and other.json()["error"]["code"] == "accessDenied"
    users = get(sim_session, "https://graph.microsoft.com/v1.0/users", token)
    assert users.status_code == 200 and any(u["userPrincipalName"] == "admin@contoso.onmicrosoft.com"
                                            for u in users.json()["value"])


def test_graph_users_without_a_user_role_is_authorization_request_denied(sim, sim_session):
    sim.control.patch_app(APP1, {"permissions": {"graph": ["Sites.Read.All"]}})
    resp = get(sim_session, "https://graph.microsoft.com/v1.0/users", cert_token(sim, sim_session)["access_token"])
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "Authorization_RequestDenied"
    assert resp.json()["error"]["message"] == "Insufficient privileges to complete the operation."


def test_sharepoint_app_only_rest(sim, sim_session):
    ok = get(sim_session, SPO_WEB, cert_token(sim, sim_session, scopes=SPO)["access_token"],
             Accept="application/json;odata=nometadata")
    assert ok.status_code == 200 and ok.json() == {"Title": "Contoso Team Site"}
    xml = get(sim_session, SPO_WEB, cert_token(sim, sim_session, scopes=SPO)["access_token"])
    assert xml.status_code == 200 and "<d:Title>Contoso Team Site</d:Title>" in xml.text
    denied = get(sim_session, SPO_WEB, cert_token(sim, sim_session, APP2, scopes=SPO)["access_token"],
                 Accept="application/json")
    assert denied.status_code == 403
    assert denied.json()["odata.error"]["code"] == "-2147024891, System.UnauthorizedAccessException"


def test_sharepoint_refuses_a_token_got_with_a_client_secret(sim, sim_session):
    sim.control.patch_app(APP1, {"secrets": ["backup-secret"]})
    result = app(sim_session, APP1, "backup-secret").acquire_token_for_client(SPO)
    token = claims(result)
    assert token["appidacr"] == "1" and token["roles"] == ["Sites.FullControl.All"]
    resp = get(sim_session, SPO_WEB, result["access_token"], Accept="application/json")
    assert resp.status_code == 401 and resp.json() == {"error_description": "Unsupported app only token."}
    assert resp.headers["WWW-Authenticate"].startswith(f'Bearer realm="{CONTOSO}"')
    # Graph takes the same app's secret token
    graph = app(sim_session, APP1, "backup-secret").acquire_token_for_client(GRAPH)
    assert get(sim_session, SITE_ROOT, graph["access_token"]).status_code == 200


# ------------------------------------------------------------------ control API


def test_consent_given_in_the_simulator_adds_the_roles(sim, sim_session):
    assert "roles" not in claims(cert_token(sim, sim_session, APP2))
    sim.control.patch_app(APP2, {"consented": True})
    assert claims(cert_token(sim, sim_session, APP2))["roles"] == ["Sites.FullControl.All", "User.Read.All"]


def test_certificates_can_be_registered_and_removed(sim, sim_session):
    pem, cert = other_certificate()
    thumb = cert.fingerprint(hashes.SHA1()).hex().upper()
    credential = {"private_key": pem, "thumbprint": thumb}
    assert app(sim_session, APP1, credential).acquire_token_for_client(GRAPH)["error_codes"] == [700027]
    sim.control.add_app_certificate(APP1, pem=cert.public_bytes(serialization.Encoding.PEM).decode())
    assert "access_token" in app(sim_session, APP1, credential).acquire_token_for_client(GRAPH)
    assert len(sim.control.app(APP1)["keyCredentials"]) == 2
    # base64 DER (a .cer file's content) is accepted as well
    der = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    sim.control.add_app_certificate(APP2, pem=der)
    assert "access_token" in app(sim_session, APP2, credential).acquire_token_for_client(GRAPH)
    _, _, demo_thumb = demo_pfx(sim)
    sim.control.remove_app_certificate(APP1, demo_thumb)
    assert cert_token(sim, sim_session)["error_codes"] == [700027]
    sim.control.reset()
    assert "access_token" in cert_token(sim, sim_session)


def test_control_api_refuses_bad_app_input(sim):
    from devtools.m365sim import SimulatorControlError

    with pytest.raises(SimulatorControlError) as bad_pem:
        sim.control.add_app_certificate(APP1, pem="not a certificate at all")
    assert bad_pem.value.status == 400 and "certificates[1].pem" in bad_pem.value.message
    with pytest.raises(SimulatorControlError) as missing:
        sim.control.patch_app(str(uuid.uuid4()), {"consented": True})
    assert missing.value.status == 404
    with pytest.raises(SimulatorControlError) as dup:
        sim.control.add_app(FABRIKAM, {"appId": APP1})
    assert dup.value.status == 400 and "duplicate app registration" in dup.value.message
    sim.control.add_app(FABRIKAM, {"appId": "c0ffee00-0000-4000-8000-0000000000ff", "displayName": "Fabrikam app",
                                   "certificates": [{"generated": "demo-app"}], "consented": True,
                                   "permissions": {"graph": ["Sites.Read.All"]}})
    assert sim.control.app("c0ffee00-0000-4000-8000-0000000000ff")["tenantId"] == FABRIKAM


def test_counters(sim, sim_session):
    sim.control.clear_counters()
    spo = cert_token(sim, sim_session, scopes=SPO)["access_token"]
    graph = cert_token(sim, sim_session)["access_token"]
    cert_token(sim, sim_session, str(uuid.uuid4()))                      # 700016
    get(sim_session, SITE_ROOT, graph)
    get(sim_session, SPO_WEB, spo)
    counters = sim.control.counters()
    assert counters["entra.token.client_credentials"]["requests"] == 3
    assert counters["entra.token.client_credentials"]["byStatus"] == {"200": 2, "400": 1}
    assert counters["graph.app"]["requests"] == 1 and counters["graph.app"]["byStatus"] == {"200": 1}
    assert counters["sharepoint.app"]["requests"] == 1 and counters["sharepoint.app"]["byStatus"] == {"200": 1}


def test_signin_log_records_app_sign_ins(sim, sim_session):
    sim.control.clear_signins()
    cert_token(sim, sim_session)
    sim.control.patch_app(APP1, {"enabled": False})
    cert_token(sim, sim_session)
    entries = [e for e in sim.control.signins() if e["appId"] == APP1]
    assert [(e["path"], e["result"], e["errorCode"]) for e in entries] == [
        ("clientCredentials", "success", None), ("clientCredentials", "failure", 7000112)]
