"""SharePoint's legacy (IDCRL) sign-in used with app passwords: extSTS.srf, wsignin1.0, REST probe."""
from __future__ import annotations

import pytest

from .helpers import APP_PASSWORD, CONTOSO, LOGIN, PASSWORD, contextinfo, ropc, sts_sign_in, wsignin

C = "contoso.onmicrosoft.com"
CONTOSO_ADMIN = "https://contoso-admin.sharepoint.com"


def sign_in(session, upn, password, site):
    kind, value = sts_sign_in(session, upn, password, site)
    assert kind == "token", value
    return value


@pytest.mark.parametrize("upn, password, site, expected", [
    (f"mfa@{C}", APP_PASSWORD, CONTOSO_ADMIN, None),                 # app password works with per-user MFA
    (f"admin@{C}", PASSWORD, "https://contoso.sharepoint.com", None),
    (f"mfa@{C}", PASSWORD, CONTOSO_ADMIN, "AADSTS50076: "),          # a normal password of an MFA user fails
    (f"mfa@{C}", "wrong", CONTOSO_ADMIN, "AADSTS50126: Error validating credentials due to invalid username "
                                         "or password."),
    (f"admin@{C}", APP_PASSWORD, CONTOSO_ADMIN, "AADSTS50126: "),     # no MFA, no app passwords
    (f"blocked@{C}", PASSWORD, CONTOSO_ADMIN, "AADSTS53003: "),
    (f"camfa@{C}", PASSWORD, CONTOSO_ADMIN, "AADSTS50076: "),
    (f"locked@{C}", PASSWORD, CONTOSO_ADMIN, "AADSTS50053: "),
    (f"disabled@{C}", PASSWORD, CONTOSO_ADMIN, "AADSTS50057: "),
    (f"nobody@{C}", PASSWORD, CONTOSO_ADMIN, "AADSTS50034: "),
    # retired: the STS still issues the token; wsignin1.0 refuses (vgrem/Office365-REST-Python-Client#1012)
    ("mfa@fabrikam.onmicrosoft.com", APP_PASSWORD, "https://fabrikam-admin.sharepoint.com", None),
    ("admin@adatum.onmicrosoft.com", PASSWORD, "https://adatum-admin.sharepoint.com", "AADSTS530035: "),
    ("mfa@northwind.onmicrosoft.com", APP_PASSWORD, "https://northwind-admin.sharepoint.com", None),
    ("mfa@tailspin.onmicrosoft.com", APP_PASSWORD, "https://tailspin-admin.sharepoint.com", None),
])
def test_sts_outcomes(sim, sim_session, upn, password, site, expected):
    kind, value = sts_sign_in(sim_session, upn, password, site)
    if expected is None:
        assert kind == "token" and value.startswith("t=") and value.endswith("&p=")
    else:
        assert kind == "fault" and value.startswith(expected), value


def test_mfa_text_names_sharepoint(sim, sim_session):
    _, text = sts_sign_in(sim_session, f"mfa@{C}", PASSWORD, CONTOSO_ADMIN)
    assert text == ("AADSTS50076: Due to a configuration change made by your administrator, or because you moved "
                    "to a new location, you must use multi-factor authentication to access "
                    "'00000003-0000-0ff1-ce00-000000000000'.")


def test_cookie_sign_in_and_admin_probe(sim, sim_session):
    token = sign_in(sim_session, f"mfa@{C}", APP_PASSWORD, CONTOSO_ADMIN)
    anonymous = contextinfo(sim_session, CONTOSO_ADMIN)
    assert anonymous.status_code == 403
    assert anonymous.headers["X-IDCRL_AUTH_PARAMS_V1"].startswith('IDCRL Type="BPOSIDCRL"')
    resp = wsignin(sim_session, CONTOSO_ADMIN, token)
    assert resp.history and resp.history[0].status_code == 302
    assert {"FedAuth", "rtFa"} <= set(sim_session.cookies.keys())
    rtfa = next(c for c in sim_session.cookies if c.name == "rtFa")
    assert rtfa.domain.lstrip(".") == "sharepoint.com"
    info = contextinfo(sim_session, CONTOSO_ADMIN)
    assert info.status_code == 200
    assert info.json()["d"]["GetContextWebInformation"]["FormDigestValue"].startswith("0x")
    flat = sim_session.post(f"{CONTOSO_ADMIN}/_api/contextinfo", headers={"Accept": "application/json"})
    assert flat.json()["FormDigestTimeoutSeconds"] == 1800
    log = sim.control.signins(f"mfa@{C}")
    assert [(e["path"], e["result"]) for e in log[-2:]] == [("legacySts", "success"), ("spoSignin", "success")]
    assert log[-2]["appPassword"] is True


def test_cookies_are_bound_to_their_host(sim, sim_session):
    wsignin(sim_session, CONTOSO_ADMIN, sign_in(sim_session, f"mfa@{C}", APP_PASSWORD, CONTOSO_ADMIN))
    assert contextinfo(sim_session, "https://contoso.sharepoint.com").status_code == 403


def test_non_admin_cannot_use_the_admin_center(sim, sim_session):
    token = sign_in(sim_session, f"reader@{C}", PASSWORD, CONTOSO_ADMIN)
    wsignin(sim_session, CONTOSO_ADMIN, token)
    assert contextinfo(sim_session, CONTOSO_ADMIN).status_code == 403
    site = "https://contoso.sharepoint.com"
    wsignin(sim_session, site, sign_in(sim_session, f"reader@{C}", PASSWORD, site))
    assert contextinfo(sim_session, site).status_code == 200


@pytest.mark.parametrize("tenant, reason", [("northwind", "legacyAuthBlocked"),
                                            ("tailspin", "idcrlBlockedByDefault"),
                                            ("fabrikam", "idcrlRetired")])
def test_sharepoint_refuses_legacy_sign_in(sim, sim_session, tenant, reason):
    site = f"https://{tenant}-admin.sharepoint.com"
    upn = f"mfa@{tenant}.onmicrosoft.com"
    token = sign_in(sim_session, upn, APP_PASSWORD, site)            # Entra still issues the token
    resp = wsignin(sim_session, site, token)
    assert resp.status_code == 403 and not resp.history
    assert "FedAuth" not in sim_session.cookies.keys() and "rtFa" not in sim_session.cookies.keys()
    assert "modern" not in resp.text.lower() and "idcrl" not in resp.text.lower()  # no invented reason text
    probe = sim_session.get(site, headers={"X-IDCRL_ACCEPTED": "t"})
    assert probe.status_code == 401 and "X-IDCRL_AUTH_PARAMS_V1" not in probe.headers
    assert probe.headers["WWW-Authenticate"].startswith("Bearer realm=")
    idcrl = sim_session.get(f"{site}/_vti_bin/idcrl.svc/", headers={"Authorization": f"BPOSIDCRL {token}",
                                                                    "X-IDCRL_ACCEPTED": "t"})
    assert idcrl.status_code == 401
    entry = sim.control.signins(upn)[-2]
    assert entry["path"] == "spoSignin" and entry["errorCode"] == reason


def test_reenabled_idcrl_and_switching_the_setting(sim, sim_session):
    site = "https://litware-admin.sharepoint.com"
    token = sign_in(sim_session, "mfa@litware.onmicrosoft.com", APP_PASSWORD, site)
    assert wsignin(sim_session, site, token).status_code == 200
    assert contextinfo(sim_session, site).status_code == 200
    sim.control.patch_tenant("litware.onmicrosoft.com", {"legacyAuth": {"blockLegacyApps": True}})
    sim_session.cookies.clear()
    assert wsignin(sim_session, site, token).status_code == 403


def test_idcrl_svc_gives_spoidcrl(sim, sim_session):
    token = sign_in(sim_session, f"mfa@{C}", APP_PASSWORD, CONTOSO_ADMIN)
    resp = sim_session.get(f"{CONTOSO_ADMIN}/_vti_bin/idcrl.svc/",
                           headers={"Authorization": f"BPOSIDCRL {token}", "X-IDCRL_ACCEPTED": "t"})
    assert resp.status_code == 200 and "SPOIDCRL" in sim_session.cookies.keys()
    assert contextinfo(sim_session, CONTOSO_ADMIN).status_code == 200


def test_unknown_admin_host_is_not_found(sim, sim_session):
    wrong = "https://wrong-admin.sharepoint.com"
    token = sign_in(sim_session, f"mfa@{C}", APP_PASSWORD, wrong)
    assert wsignin(sim_session, wrong, token).status_code == 404
    assert contextinfo(sim_session, wrong).status_code == 404


def test_forged_token_is_refused(sim, sim_session):
    assert wsignin(sim_session, CONTOSO_ADMIN, "t=forged.token&p=").status_code == 403


def test_malformed_request_gets_invalid_sts_request(sim, sim_session):
    resp = sim_session.post(f"{LOGIN}/extSTS.srf", data=b"<not-soap/>")
    assert "AADSTS90023: Invalid STS request." in resp.text


def test_modern_bearer_token_works_on_sharepoint(sim, sim_session):
    result = ropc(sim_session, CONTOSO, f"spadmin@{C}", PASSWORD, scopes=[f"{CONTOSO_ADMIN}/.default"])
    assert contextinfo(sim_session, CONTOSO_ADMIN).status_code == 403      # no session yet
    resp = sim_session.post(f"{CONTOSO_ADMIN}/_api/contextinfo",
                            headers={"Authorization": f"Bearer {result['access_token']}",
                                     "Accept": "application/json"})
    assert resp.status_code == 200


def test_cookies_reach_clients_that_follow_the_redirect(sim, sim_session):
    """sharepy and SharePlum read the final answer's cookies (JonathanHolvey/sharepy#83's traceback)."""
    token = sign_in(sim_session, f"mfa@{C}", APP_PASSWORD, CONTOSO_ADMIN)
    resp = wsignin(sim_session, CONTOSO_ADMIN, token)
    assert resp.status_code == 200 and resp.url.endswith("/_layouts/15/landing.aspx")
    assert resp.cookies.get("FedAuth") and resp.cookies.get("rtFa")
    first = resp.history[0]
    assert first.status_code == 302 and first.cookies.get("FedAuth") and first.cookies.get("rtFa")


@pytest.mark.parametrize("accept, kind", [(None, "xml"), ("application/xml", "xml"), ("application/atom+xml", "xml"),
                                          ("application/json;odata=verbose", "json"),
                                          ("application/json;odata=nometadata", "json"),
                                          ("application/json", "json")])
def test_rest_answers_honour_accept(sim, sim_session, accept, kind):
    from xml.etree import ElementTree

    wsignin(sim_session, CONTOSO_ADMIN, sign_in(sim_session, f"mfa@{C}", APP_PASSWORD, CONTOSO_ADMIN))
    headers = {"Accept": accept} if accept else {}
    info = sim_session.post(f"{CONTOSO_ADMIN}/_api/contextinfo", headers=headers)
    web = sim_session.get(f"{CONTOSO_ADMIN}/_api/web", headers=headers)
    missing = sim_session.get(f"{CONTOSO_ADMIN}/_api/nothing", headers=headers)
    if kind == "json":
        assert info.headers["Content-Type"].startswith("application/json") and "FormDigestValue" in info.text
        assert "Title" in web.json() or "Title" in web.json()["d"]
        assert missing.status_code == 404 and missing.json()
        return
    ns = {"d": "http://schemas.microsoft.com/ado/2007/08/dataservices",
          "m": "http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"}
    root = ElementTree.fromstring(info.content)
    assert info.headers["Content-Type"].startswith("application/xml")
    assert root.find(".//d:FormDigestValue", ns).text.startswith("0x")
    assert root.find(".//d:FormDigestTimeoutSeconds", ns).text == "1800"
    assert ElementTree.fromstring(web.content).find(".//m:properties/d:Title", ns).text.startswith("Contoso")
    error = ElementTree.fromstring(missing.content)
    assert missing.status_code == 404 and error.find("m:code", ns).text.startswith("-1, ")


def test_date_header_follows_the_scenario(sim, sim_session):
    from email.utils import parsedate_to_datetime

    sim.control.patch_scenario({"settings": {"date": "2026-04-15"}})
    resp = sim_session.get(CONTOSO_ADMIN)
    assert parsedate_to_datetime(resp.headers["Date"]).date().isoformat() == "2026-04-15"
