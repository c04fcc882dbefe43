"""SharePoint Online's legacy sign-in with an app password (the MFA profile's Validation Test).

The flow of ``SharePointOnlineCredentials`` / Office365-REST-Python-Client's ``SamlTokenProvider``:

1. ``POST https://{login_host}/extSTS.srf`` — a WS-Trust 2005 ``RequestSecurityToken`` (Issue) with
   a ``wsse:UsernameToken`` (user name and app password) and ``wsp:AppliesTo`` = the admin center.
   The answer (HTTP 200 either way) is a ``RequestSecurityTokenResponse`` whose
   ``wsse:BinarySecurityToken`` holds the compact ``t=...&p=`` service token, or an ``S:Fault``
   whose ``psf:internalerror/psf:text`` is Entra's "AADSTSnnnnn: text" line.
2. ``POST {admin}/_forms/default.aspx?wa=wsignin1.0`` with that token as the body — a 302 that sets
   the ``FedAuth`` (host) and ``rtFa`` (``sharepoint.com``) cookies. Redirects are not followed.
3. ``POST {admin}/_api/contextinfo`` with the cookies (``Accept: application/json;odata=nometadata``)
   — the authenticated probe; only a Global or SharePoint Administrator may open the admin center.

Conditions reported in ``ProbeResult.error_code`` besides AADSTS codes: ``STS_INVALID_RESPONSE``
(no SOAP answer, e.g. an HTML page), ``STS_FAULT`` (a fault without an AADSTS code), and at
wsignin1.0, after the STS issued a token, a refusal (no FedAuth cookie, 401 or 403) judged by the
cloud's timeline: ``IDCRL_RETIRED`` on or after the day this cloud's legacy sign-in stopped for good
(:data:`LEGACY_SIGN_IN_ENDS`; public cloud: May 1, 2026, message center MC1184649), else
``SP_NO_AUTH_COOKIE`` (blocked, which an admin could still undo before that day). The day is the
``Date`` of SharePoint's answer (the machine's clock when it has none); the description names the
step, the status and that date. Real tenants say nothing more: the token is issued and wsignin1.0
answers an error page or a 403 without cookies (vgrem/Office365-REST-Python-Client#1012, #982, #986,
JonathanHolvey/sharepy#83), so no text of the answer is keyed on.

Other conditions: ``SP_UNAUTHORIZED`` (401, or SharePoint's anonymous challenge, at contextinfo),
``SP_FORBIDDEN`` (403 for the signed-in account), ``SP_NOT_FOUND`` (404: no SharePoint site there),
``SP_URL_NOT_SHAREPOINT`` (the URL is not a SharePoint Online host of this cloud; nothing is sent).
"""
from __future__ import annotations

import re
import uuid
from datetime import date, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Protocol
from urllib.parse import urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as DefusedElementTree

from shared.adapters.upstream_http import Exchange, UpstreamHttp
from shared.domain.probes import Grant, ProbeResult
from shared.domain.profile import Password
from shared.domain.troubleshooting import most_specific_code

NS = {
    "S": "http://www.w3.org/2003/05/soap-envelope",
    "psf": "http://schemas.microsoft.com/Passport/SoapServices/SOAPFault",
    "wst": "http://schemas.xmlsoap.org/ws/2005/02/trust",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
}
_AADSTS_LINE = re.compile(r"\b(AADSTS\d{5,7})\b")
_HOST = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_COOKIES = ("FedAuth", "rtFa")

#: The day each cloud's SharePoint legacy (IDCRL) sign-in is blocked for good, None where no date is
#: published. Public cloud: blocked by default from February 16, 2026, re-enable possible until April
#: 30, 2026, permanently blocked from May 1, 2026 (message center MC1184649). US Government and
#: China (21Vianet): MC1184649 gives no date for them, so unknown. The local cloud stands in for the
#: public one; the simulator's scenario sets the day it reports (``settings.date``). A cloud's
#: endpoint set may carry its own ``legacy_sign_in_ends``, which then wins.
LEGACY_SIGN_IN_ENDS: dict[str, date | None] = {"public": date(2026, 5, 1), "local": date(2026, 5, 1),
                                               "usgov": None, "china": None}

_RST = """<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://www.w3.org/2005/08/addressing" \
xmlns:u="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">
  <s:Header>
    <a:Action s:mustUnderstand="1">http://schemas.xmlsoap.org/ws/2005/02/trust/RST/Issue</a:Action>
    <a:MessageID>urn:uuid:{message_id}</a:MessageID>
    <a:ReplyTo><a:Address>http://www.w3.org/2005/08/addressing/anonymous</a:Address></a:ReplyTo>
    <a:To s:mustUnderstand="1">{sts_url}</a:To>
    <o:Security s:mustUnderstand="1" \
xmlns:o="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd">
      <u:Timestamp u:Id="_0"><u:Created>{created}</u:Created><u:Expires>{expires}</u:Expires></u:Timestamp>
      <o:UsernameToken u:Id="uuid-{token_id}">
        <o:Username>{username}</o:Username>
        <o:Password>{password}</o:Password>
      </o:UsernameToken>
    </o:Security>
  </s:Header>
  <s:Body>
    <t:RequestSecurityToken xmlns:t="http://schemas.xmlsoap.org/ws/2005/02/trust">
      <wsp:AppliesTo xmlns:wsp="http://schemas.xmlsoap.org/ws/2004/09/policy">
        <a:EndpointReference><a:Address>{applies_to}</a:Address></a:EndpointReference>
      </wsp:AppliesTo>
      <t:KeyType>http://schemas.xmlsoap.org/ws/2005/05/identity/NoProofKey</t:KeyType>
      <t:RequestType>http://schemas.xmlsoap.org/ws/2005/02/trust/Issue</t:RequestType>
      <t:TokenType>urn:oasis:names:tc:SAML:1.0:assertion</t:TokenType>
    </t:RequestSecurityToken>
  </s:Body>
</s:Envelope>"""


def _xml(value: str) -> str:
    return escape(value, {'"': "&quot;", "'": "&apos;"})


def issue_request(username: str, password: str, *, sts_url: str, applies_to: str,
                  now: datetime | None = None) -> bytes:
    """The WS-Trust Issue envelope. It holds the password: build it only to send it."""
    now = now or datetime.now(timezone.utc)
    stamp = "%Y-%m-%dT%H:%M:%S.000Z"
    return _RST.format(message_id=uuid.uuid4(), token_id=uuid.uuid4(), sts_url=_xml(sts_url),
                       created=now.strftime(stamp), expires=(now + timedelta(minutes=10)).strftime(stamp),
                       username=_xml(username), password=_xml(password),
                       applies_to=_xml(applies_to)).encode("utf-8")


class ForbiddenXml(ValueError):
    """The XML declares a DTD, an entity or an external reference (SOAP 1.2 forbids a DTD)."""


def parse_xml(content: bytes) -> ElementTree.Element:
    """Parse with defusedxml (``forbid_dtd=True``): no document type, no entity declared or expanded,
    no external reference, whatever the encoding (UTF-16, a BOM, a DTD after a long comment).

    :raises ForbiddenXml: for any of those; :raises ElementTree.ParseError: for malformed XML.
    """
    try:
        return DefusedElementTree.fromstring(content, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise ForbiddenXml(f"the XML declares a document type, an entity or an external reference ({exc})") from exc


def parse_issue_response(content: bytes) -> tuple[str | None, str | None, str | None]:
    """``(service token, error code, safe description)`` from extSTS.srf's answer.

    The error code is the AADSTS code of a fault, ``STS_FAULT`` or ``STS_INVALID_RESPONSE``.
    """
    try:
        root = parse_xml(content)
    except ForbiddenXml:
        return None, "STS_INVALID_RESPONSE", "the security token service answered with a document type"
    except ElementTree.ParseError:
        return None, "STS_INVALID_RESPONSE", "the security token service did not answer with XML"
    fault = root.find(".//S:Body/S:Fault", NS)
    if fault is not None:
        text = (root.findtext(".//psf:internalerror/psf:text", default="", namespaces=NS)
                or root.findtext(".//S:Reason/S:Text", default="", namespaces=NS)).strip()
        line = text.splitlines()[0][:500] if text else "Authentication Failure"
        code = most_specific_code(_AADSTS_LINE.findall(line))  # "AADSTS70002: ... AADSTS50126: ..."
        if code:
            return None, code, line
        return None, "STS_FAULT", line
    token = root.findtext(".//wst:RequestedSecurityToken/wsse:BinarySecurityToken", default="", namespaces=NS)
    if not token.strip():
        return None, "STS_INVALID_RESPONSE", "the answer holds neither a security token nor a fault"
    return token.strip(), None, None


def _refusal_code(status: int, headers) -> str | None:
    """What a SharePoint answer without a session means (None: judge by the HTTP status)."""
    if status == 401 or "X-IDCRL_AUTH_PARAMS_V1" in headers or "X-Forms_Based_Auth_Required" in headers:
        return "SP_UNAUTHORIZED"
    if status == 404:
        return "SP_NOT_FOUND"
    return None


def answer_day(headers) -> date:
    """The UTC day of an upstream answer (its ``Date`` header; the machine's clock without one)."""
    try:
        when = parsedate_to_datetime(headers.get("Date") or "")
    except (TypeError, ValueError):
        when = None
    if when is None:
        return datetime.now(timezone.utc).date()
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).astimezone(timezone.utc).date()


def legacy_sign_in_ends(endpoints) -> date | None:
    """The day this cloud's legacy sign-in stopped for good (None: not published)."""
    own = getattr(endpoints, "legacy_sign_in_ends", None)
    if isinstance(own, date):
        return own
    return LEGACY_SIGN_IN_ENDS.get(getattr(endpoints, "name", ""))


def wsignin_refusal(status: int, headers, endpoints) -> tuple[str, str]:
    """``(code, description)`` of a wsignin1.0 refusal after a good token, by the cloud's timeline."""
    day = answer_day(headers)
    ends = legacy_sign_in_ends(endpoints)
    facts = f"wsignin1.0 answered HTTP {status} without a FedAuth cookie on {day.isoformat()}"
    if ends is None:
        return "SP_NO_AUTH_COOKIE", f"{facts}; this cloud has no published end date for the legacy sign-in"
    if day >= ends:
        return "IDCRL_RETIRED", f"{facts}, on or after {ends.isoformat()}, when the legacy sign-in ended"
    return "SP_NO_AUTH_COOKIE", f"{facts}, before {ends.isoformat()}, when the legacy sign-in ends"


class SharePointEndpoints(Protocol):
    """What the legacy sign-in needs of the cloud (:class:`shared.cloud.CloudEndpoints` has it)."""

    name: str
    sharepoint_suffix: str

    def sts_url(self) -> str: ...


class SharePointLegacySignIn:
    """The legacy sign-in steps, over the probes' :class:`~shared.adapters.upstream_http.UpstreamHttp`.

    :param UpstreamHttp http: the probe's recorded HTTP.
    :param SharePointEndpoints endpoints: the cloud's STS URL and SharePoint Online suffix.
    """

    def __init__(self, http: UpstreamHttp, endpoints: SharePointEndpoints):
        self._http = http
        self._endpoints = endpoints

    def admin_origin(self, admin_center_url: str) -> str | None:
        """``https://{host}`` when the URL is a SharePoint Online host of this cloud, else None."""
        try:
            parts = urlsplit((admin_center_url or "").strip())
            host = (parts.hostname or "").lower()
            port = parts.port
        except ValueError:
            return None
        suffix = "." + self._endpoints.sharepoint_suffix
        if parts.scheme != "https" or port not in (None, 443) or parts.username or not host.endswith(suffix):
            return None
        label = host[: -len(suffix)]
        return f"https://{host}" if _HOST.match(label) else None

    def sign_in(self, username: str, password: Password, admin_center_url: str, *,
                correlation_id: str) -> ProbeResult:
        """extSTS.srf then wsignin1.0 (2 requests); ``grant`` holds the FedAuth/rtFa cookies."""
        origin = self.admin_origin(admin_center_url)
        if origin is None:
            return ProbeResult(ok=False, error_code="SP_URL_NOT_SHAREPOINT", step="adminCenter",
                               correlation_id=correlation_id,
                               error_description=f"not an https://*.{self._endpoints.sharepoint_suffix} address")
        sts_url = self._endpoints.sts_url()
        with self._http.exchange(correlation_id) as ex:
            try:
                resp = self._http.request(
                    "POST", sts_url, step="sts",
                    data=issue_request(username, password.reveal(), sts_url=sts_url, applies_to=origin),
                    headers={"Content-Type": "application/soap+xml; charset=utf-8"})
                if resp.status_code == 429 or resp.status_code >= 500:
                    return ex.failed(None, f"HTTP {resp.status_code}")
                token, code, description = parse_issue_response(resp.content)
                if token is None:
                    return ex.failed(code, description)
                resp = self._http.request(
                    "POST", f"{origin}/_forms/default.aspx?wa=wsignin1.0", step="wsignin", data=token,
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
                cookies = {name: resp.cookies.get(name) for name in _COOKIES if resp.cookies.get(name)}
                if resp.status_code < 400 and "FedAuth" in cookies:
                    return ex.ok(grant=Grant(cookies))
                if resp.status_code == 429 or resp.status_code >= 500 or resp.status_code == 404:
                    return self._refused(ex, resp, default=None)
                return ex.failed(*wsignin_refusal(resp.status_code, resp.headers, self._endpoints))
            except Exception as exc:  # noqa: BLE001 - transport errors become data
                return ex.from_exception(exc)

    def check_admin_center(self, grant: Grant, admin_center_url: str, *, correlation_id: str) -> ProbeResult:
        """``POST {admin}/_api/contextinfo`` with the cookies (1 request)."""
        origin = self.admin_origin(admin_center_url)
        if origin is None:
            return ProbeResult(ok=False, error_code="SP_URL_NOT_SHAREPOINT", step="adminCenter",
                               correlation_id=correlation_id)
        with self._http.exchange(correlation_id, step="contextinfo") as ex:
            try:
                resp = self._http.request(
                    "POST", f"{origin}/_api/contextinfo", data=b"", cookies=grant.reveal(),
                    headers={"Accept": "application/json;odata=nometadata"})
                if resp.status_code == 200 and "FormDigestValue" in resp.text:
                    return ex.ok()
                if resp.status_code == 200:
                    return ex.failed("PROBE_FAILURE", "contextinfo answered without a form digest")
                return self._refused(ex, resp, default="SP_FORBIDDEN" if resp.status_code == 403 else None)
            except Exception as exc:  # noqa: BLE001
                return ex.from_exception(exc)

    @staticmethod
    def _refused(ex: Exchange, resp, *, default: str | None) -> ProbeResult:
        if resp.status_code == 429 or resp.status_code >= 500:
            return ex.failed(None, f"HTTP {resp.status_code}")
        body = resp.text[:4096]
        code = _refusal_code(resp.status_code, resp.headers) or default
        return ex.failed(code, _sharepoint_text(body) or f"HTTP {resp.status_code}")


def _sharepoint_text(body: str) -> str | None:
    """A short, safe description from SharePoint's error JSON or HTML page."""
    match = re.search(r'"value"\s*:\s*"([^"]{1,300})"', body) or re.search(r"<p>([^<]{1,300})</p>", body)
    return match.group(1) if match else None
