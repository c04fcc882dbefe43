"""Public SharePoint Online clients, unchanged, through the legacy (IDCRL) sign-in of the simulator.

* Office365-REST-Python-Client 2.5.x ``UserCredential`` (``SamlTokenProvider``): extSTS.srf, then
  wsignin1.0 in a ``requests.Session`` that follows the redirect and keeps every cookie it saw;
  valid when the jar holds ``FedAuth`` (or ``SPOIDCRL``). Fails with "An error occurred while
  retrieving auth cookies from …/_forms/default.aspx?wa=wsignin1.0" when there are none — the message
  of vgrem/Office365-REST-Python-Client#1012, #982, #986 on tenants past the IDCRL retirement.
* sharepy 2.0 (``sharepy.auth.SharePointOnline``): reads ``rtFa``/``FedAuth`` from the *final*
  response after following the redirect (``response.cookies``), checks ``GET /_api/web`` and parses
  ``d:FormDigestValue`` from ``/_api/contextinfo`` as XML (no ``Accept``); the ``KeyError`` of
  JonathanHolvey/sharepy#83 is what it raises when the cookies are missing.
* SharePlum 0.5 (``shareplum.Office365``): the cookies of the wsignin1.0 answer after the redirect;
  its request helper raises on the 403 of a refused sign-in.
"""
from __future__ import annotations

import pytest

from tests.sim.helpers import APP_PASSWORD, PASSWORD

C = "contoso.onmicrosoft.com"
CONTOSO = "https://contoso.sharepoint.com"
CONTOSO_ADMIN = "https://contoso-admin.sharepoint.com"
FABRIKAM_ADMIN = "https://fabrikam-admin.sharepoint.com"


def office365_web_title(site: str, username: str, password: str) -> str:
    from office365.runtime.auth.user_credential import UserCredential
    from office365.sharepoint.client_context import ClientContext

    ctx = ClientContext(site).with_credentials(UserCredential(username, password))
    web = ctx.web.get().execute_query()
    return web.properties["Title"]


def test_office365_client_signs_in_with_an_app_password(routed_requests):
    assert office365_web_title(CONTOSO_ADMIN, f"mfa@{C}", APP_PASSWORD) == "Contoso SharePoint admin center"


def test_office365_client_signs_in_with_a_password(routed_requests):
    assert office365_web_title(CONTOSO, f"admin@{C}", PASSWORD) == "Contoso Team Site"


def test_office365_client_on_a_retired_tenant_fails_at_wsignin(routed_requests):
    with pytest.raises(ValueError, match=r"An error occurred while retrieving auth cookies from "
                                         r"https://fabrikam-admin\.sharepoint\.com/_forms/default\.aspx\?wa=wsignin1\.0"):
        office365_web_title(FABRIKAM_ADMIN, "mfa@fabrikam.onmicrosoft.com", APP_PASSWORD)


def test_office365_client_wrong_password_reports_the_sts_text(routed_requests):
    with pytest.raises(ValueError, match="AADSTS50126"):
        office365_web_title(CONTOSO_ADMIN, f"mfa@{C}", "wrong-password")


def test_sharepy_connects_and_reads_the_xml_digest(routed_requests):
    import sharepy

    session = sharepy.connect("contoso-admin.sharepoint.com", username=f"mfa@{C}", password=APP_PASSWORD)
    assert session.auth.digest.startswith("0x")
    response = session.get(f"{CONTOSO_ADMIN}/_api/web", headers={"Accept": "application/json;odata=nometadata"})
    assert response.status_code == 200 and response.json()["Title"] == "Contoso SharePoint admin center"


def test_sharepy_on_a_retired_tenant_finds_no_cookies(routed_requests):
    import sharepy

    with pytest.raises(KeyError, match="rtFa"):  # sharepy#83's traceback: cookies['rtFa'] missing
        sharepy.connect("fabrikam-admin.sharepoint.com", username="mfa@fabrikam.onmicrosoft.com",
                        password=APP_PASSWORD)


def test_shareplum_gets_cookies_and_a_digest(routed_requests):
    import requests
    from shareplum import Office365

    cookies = Office365(CONTOSO_ADMIN, username=f"mfa@{C}", password=APP_PASSWORD).GetCookies()
    assert cookies.get("FedAuth") and cookies.get("rtFa")
    response = requests.post(f"{CONTOSO_ADMIN}/_api/contextinfo", cookies=cookies,
                             headers={"Accept": "application/json;odata=nometadata"})
    assert response.status_code == 200 and response.json()["FormDigestValue"].startswith("0x")


def test_shareplum_on_a_retired_tenant_is_refused_at_wsignin(routed_requests):
    from shareplum import Office365
    from shareplum.errors import ShareplumRequestError

    with pytest.raises(ShareplumRequestError, match=r"403 Client Error: Forbidden for url: "
                                                    r"https://fabrikam-admin\.sharepoint\.com/_forms/default\.aspx"):
        Office365(FABRIKAM_ADMIN, username="mfa@fabrikam.onmicrosoft.com", password=APP_PASSWORD).GetCookies()
