"""What the product's clients send, built the way the public libraries build it."""
from __future__ import annotations

import uuid
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import msal

LOGIN = "https://login.microsoftonline.com"
from tests.demo import ADATUM, CONTOSO, FABRIKAM, LITWARE, NORTHWIND, OPERATOR, TAILSPIN  # noqa: F401
PUBLIC_CLIENT = "1950a258-227b-4e31-a9cf-717495945fc2"
PASSWORD = "Demo-Passw0rd!"
APP_PASSWORD = "qwertyuiopasdfgh"
GRAPH_SCOPE = ["https://graph.microsoft.com/.default"]
GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"
SHAREPOINT_ADMIN = "f28a1f50-f6e7-4571-818b-6a12f2af6b6c"


def ropc(session, tenant: str, upn: str, password: str, scopes=GRAPH_SCOPE) -> dict:
    """msal's username/password flow exactly as the product calls it."""
    app = msal.PublicClientApplication(PUBLIC_CLIENT, authority=f"{LOGIN}/{tenant}", http_client=session,
                                       instance_discovery=False)
    return app.acquire_token_by_username_password(upn, password, scopes=scopes)


# The SAML (WS-Trust 2005 Issue) envelope of Office365-REST-Python-Client's SAML.xml / PnP's
# SharePointOnlineCredentials flow: UsernameToken in the security header, AppliesTo = the site URL.
_RST = """<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://www.w3.org/2005/08/addressing" xmlns:u="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">
  <s:Header>
    <a:Action s:mustUnderstand="1">http://schemas.xmlsoap.org/ws/2005/02/trust/RST/Issue</a:Action>
    <a:MessageID>urn:uuid:{message_id}</a:MessageID>
    <a:ReplyTo><a:Address>http://www.w3.org/2005/08/addressing/anonymous</a:Address></a:ReplyTo>
    <a:To s:mustUnderstand="1">https://login.microsoftonline.com/extSTS.srf</a:To>
    <o:Security s:mustUnderstand="1" xmlns:o="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd">
      <o:UsernameToken u:Id="uuid-{message_id}-1">
        <o:Username>{username}</o:Username>
        <o:Password>{password}</o:Password>
      </o:UsernameToken>
    </o:Security>
  </s:Header>
  <s:Body>
    <t:RequestSecurityToken xmlns:t="http://schemas.xmlsoap.org/ws/2005/02/trust">
      <wsp:AppliesTo xmlns:wsp="http://schemas.xmlsoap.org/ws/2004/09/policy">
        <a:EndpointReference><a:Address>{address}</a:Address></a:EndpointReference>
      </wsp:AppliesTo>
      <t:KeyType>http://schemas.xmlsoap.org/ws/2005/05/identity/NoProofKey</t:KeyType>
      <t:RequestType>http://schemas.xmlsoap.org/ws/2005/02/trust/Issue</t:RequestType>
      <t:TokenType>urn:oasis:names:tc:SAML:1.0:assertion</t:TokenType>
    </t:RequestSecurityToken>
  </s:Body>
</s:Envelope>"""

_NS = {"S": "http://www.w3.org/2003/05/soap-envelope",
       "psf": "http://schemas.microsoft.com/Passport/SoapServices/SOAPFault",
       "wst": "http://schemas.xmlsoap.org/ws/2005/02/trust",
       "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"}


def rst_envelope(username: str, password: str, address: str) -> str:
    return _RST.format(message_id=uuid.uuid4(), username=escape(username), password=escape(password),
                       address=escape(address))


def sts_sign_in(session, username: str, password: str, address: str) -> tuple[str, str]:
    """POST the RST to extSTS.srf; ("token", "t=...&p=") or ("fault", psf:text)."""
    resp = session.post(f"{LOGIN}/extSTS.srf", data=rst_envelope(username, password, address).encode(),
                        headers={"Content-Type": "application/soap+xml; charset=utf-8"}, timeout=10)
    assert resp.status_code == 200, resp.text
    root = ElementTree.fromstring(resp.content)
    fault = root.find("S:Body/S:Fault", _NS)
    if fault is not None:
        return "fault", fault.find("S:Detail/psf:error/psf:internalerror/psf:text", _NS).text
    token = root.find("S:Body/wst:RequestSecurityTokenResponse/wst:RequestedSecurityToken/wsse:BinarySecurityToken",
                      _NS)
    return "token", token.text


def wsignin(session, site: str, token: str):
    """Exchange the service token for FedAuth/rtFa cookies (kept in ``session``)."""
    return session.post(f"{site}/_forms/default.aspx?wa=wsignin1.0", data=token,
                        headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10)


def contextinfo(session, site: str, **kwargs):
    return session.post(f"{site}/_api/contextinfo", headers={"Accept": "application/json;odata=verbose"},
                        timeout=10, **kwargs)


# App registrations of the demo scenario (DESIGN.md §7; issue 15 for the diagnosis apps).
APP_BACKUP = "c0ffee00-0000-4000-8000-000000000001"       # consented: Sites.FullControl.All, User.Read.All
APP_NO_CONSENT = "c0ffee00-0000-4000-8000-000000000002"
APP_DIAGNOSTICS = "c0ffee00-0000-4000-8000-000000000003"  # + AuditLog.Read.All, Policy.Read.All (contoso, P1)
APP_DIAGNOSTICS_NO_P1 = "c0ffee00-0000-4000-8000-000000000004"  # the same permissions in litware (no P1)


def demo_certificate(sim) -> dict:
    """msal's ``client_credential`` for <state-dir>/demo-app.pfx (password ``demo``): key PEM + SHA-1."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    key, cert, _ = pkcs12.load_key_and_certificates((sim.state_dir / "demo-app.pfx").read_bytes(), b"demo")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return {"private_key": pem, "thumbprint": cert.fingerprint(hashes.SHA1()).hex().upper()}


def app_token(sim, session, client_id: str = APP_DIAGNOSTICS, tenant: str = CONTOSO,
              scopes=GRAPH_SCOPE) -> dict:
    """A client-credentials token of a demo app registration, the way the product's app profile gets it
    (msal's ConfidentialClientApplication signing an assertion with the demo certificate)."""
    app = msal.ConfidentialClientApplication(client_id, authority=f"{LOGIN}/{tenant}",
                                             client_credential=demo_certificate(sim), http_client=session,
                                             instance_discovery=False)
    return app.acquire_token_for_client(scopes)


def ropc_raw(session, tenant: str, upn: str, password: str, *, correlation_id: str,
             scope: str = "https://graph.microsoft.com/.default openid profile offline_access"):
    """The password grant as msal posts it, with a chosen ``client-request-id``."""
    return session.post(f"{LOGIN}/{tenant}/oauth2/v2.0/token", data={
        "grant_type": "password", "client_id": PUBLIC_CLIENT, "username": upn, "password": password,
        "scope": scope, "client_info": "1"}, headers={"client-request-id": correlation_id}, timeout=10)
