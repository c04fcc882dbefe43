"""SharePoint Online hosts (``{name}.sharepoint.com``, ``{name}-admin.sharepoint.com`` and custom admin
center URLs): the legacy cookie sign-in that follows extSTS.srf, and a few REST endpoints.

* ``POST /_forms/default.aspx?wa=wsignin1.0`` with the ``t=...&p=`` service token → 302 with
  ``rtFa`` (domain ``sharepoint.com``) and ``FedAuth`` (host) cookies, to ``/_layouts/15/landing.aspx``;
  every successful answer to a cookie session sets them again (the landing page's 200, contextinfo): clients that read the 302 (Office365-REST-Python-Client keeps
  every cookie of its session) and clients that read the final answer after following the redirect
  (sharepy, SharePlum: ``response.cookies``) both get them.
* ``GET /_vti_bin/idcrl.svc/`` with ``Authorization: BPOSIDCRL <token>`` → ``SPOIDCRL`` cookie (the
  CSOM ``SharePointOnlineCredentials`` path).
* Anonymous requests: 403 with ``X-IDCRL_AUTH_PARAMS_V1`` (and ``X-MSDAVEXT_Error: 917656``) while the
  tenant accepts legacy (IDCRL) sign-in; 401 with a ``Bearer realm`` challenge and no IDCRL header
  when SharePoint blocks apps that don't use modern authentication or IDCRL is blocked/retired.
  The cookie sign-in itself is then refused with 403 and no cookies, after extSTS.srf issued the token
  (the real symptom: vgrem/Office365-REST-Python-Client#1012, #982, #986, JonathanHolvey/sharepy#83).
  The refusal page is the same for every reason: no published text tells them apart.
* REST answers honour ``Accept``: JSON for the ``application/json`` (odata) forms, XML otherwise
  (SharePoint's default: sharepy parses ``d:FormDigestValue`` from ``contextinfo`` without ``Accept``).
* ``settings.date`` of the scenario sets the date of the ``Date`` header (default: today).
* ``POST /_api/contextinfo`` (FormDigestValue), ``GET /_api/web``, ``GET /_api/web/currentuser``.
  Admin-center hosts require the SharePoint Administrator or Global Administrator role.
* Unknown ``*.sharepoint.com`` hosts (no such tenant / wrong custom URL) → 404.
"""
from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from email.utils import format_datetime
from urllib.parse import unquote
from xml.sax.saxutils import escape

from aiohttp import web

from .scenario import SPO_ADMIN_ROLES
from .tokens import RESOURCE_APP_IDS, TokenError
from .webutil import bearer, json_response, text_response

SPO_APP_ID = RESOURCE_APP_IDS["sharepoint"]
IDCRL_PARAMS = 'IDCRL Type="BPOSIDCRL", EndPoint="/_vti_bin/idcrl.svc/", RootDomain="sharepoint.com", Policy="MBI"'
ANON_DAV_ERROR = ("917656; Access+denied.+Before+opening+files+in+this+location%2c+you+must+first+browse+to+"
                  "the+web+site+and+select+the+option+to+login+automatically.")
ACCESS_DENIED = "Access denied. You do not have permission to perform this action or access this resource."
_NOT_FOUND_HTML = "<html><head><title>404 NOT FOUND</title></head><body><h1>404 FILE NOT FOUND</h1></body></html>"


def legacy_block_reason(tenant: dict) -> str | None:
    """Why SharePoint refuses legacy (IDCRL / cookie) sign-in for this tenant, or None if it accepts it."""
    la = tenant["legacyAuth"]
    if la["idcrl"] == "retired":
        return "idcrlRetired"
    if la["idcrl"] == "blockedByDefault" and not la["idcrlReEnabled"]:
        return "idcrlBlockedByDefault"
    if la["blockLegacyApps"]:
        return "legacyAuthBlocked"
    return None


def _xml_entry(site: str, sp_type: str, values: dict) -> str:
    """An Atom entry with the entity's properties (SharePoint's XML answer to an entity GET)."""
    props = "".join(_xml_value(k, v) for k, v in values.items())
    return (f'<entry xml:base="{escape(site)}/_api/" xmlns="http://www.w3.org/2005/Atom" xmlns:d="{NS_D}" '
            f'xmlns:m="{NS_M}"><category term="{sp_type}" '
            'scheme="http://schemas.microsoft.com/ado/2007/08/dataservices/scheme" />'
            f'<content type="application/xml"><m:properties>{props}</m:properties></content></entry>')


def _compact_token(text: str) -> str:
    """The sealed token out of the compact ``t=<token>&p=`` form (or a bare token)."""
    text = text.strip()
    if text.startswith("t="):
        text = text[2:]
    return text.split("&", 1)[0]


NS_D = "http://schemas.microsoft.com/ado/2007/08/dataservices"
NS_M = "http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"


def wants_json(request: web.Request) -> bool:
    """SharePoint's REST API answers JSON only for the ``application/json`` forms of ``Accept``."""
    return "application/json" in request.headers.get("Accept", "").lower()


def _xml_response(xml: str, status: int = 200, headers: dict | None = None) -> web.Response:
    return text_response('<?xml version="1.0" encoding="utf-8"?>' + xml, status,
                         "application/xml;charset=utf-8", headers)


def _sp_error(request: web.Request, status: int, code: str, text: str, headers: dict | None = None):
    if not wants_json(request):
        return _xml_response(f'<m:error xmlns:m="{NS_M}"><m:code>{escape(code)}</m:code>'
                             f'<m:message xml:lang="en-US">{escape(text)}</m:message></m:error>', status, headers)
    accept = request.headers.get("Accept", "")
    err = {"code": code, "message": {"lang": "en-US", "value": text}}
    body = {"error": err} if "odata=verbose" in accept else {"odata.error": err}
    return json_response(body, status, headers)


def _xml_value(name: str, value) -> str:
    if isinstance(value, bool):
        return f'<d:{name} m:type="Edm.Boolean">{str(value).lower()}</d:{name}>'
    if isinstance(value, int):
        return f'<d:{name} m:type="Edm.Int32">{value}</d:{name}>'
    if isinstance(value, list):
        items = "".join(f"<d:element>{escape(str(v))}</d:element>" for v in value)
        return f'<d:{name} m:type="Collection(Edm.String)">{items}</d:{name}>'
    return f"<d:{name}>{escape(str(value))}</d:{name}>"


def _xml_properties(root: str, sp_type: str, values: dict) -> str:
    """The OData v3 XML form of one complex value (what ``contextinfo`` answers without ``Accept``)."""
    props = "".join(_xml_value(k, v) for k, v in values.items())
    return f'<d:{root} xmlns:d="{NS_D}" xmlns:m="{NS_M}" m:type="{sp_type}">{props}</d:{root}>'


class SharePointService:
    def __init__(self, state):
        self.state = state

    def http_date(self) -> str:
        """``Date`` of SharePoint's answers: now, on the scenario's ``settings.date`` when it has one."""
        now = datetime.now(timezone.utc)
        day = self.state.scenario["settings"].get("date")
        if day:
            y, m, d = (int(x) for x in day.split("-"))
            now = now.replace(year=y, month=m, day=d)
        return format_datetime(now, usegmt=True)

    def endpoint(self, request: web.Request) -> str:
        path = request.path.lower()
        if path.startswith("/_forms/default.aspx") or path.startswith("/_vti_bin/idcrl.svc"):
            return "sharepoint.signin"
        return "sharepoint.api"

    def fault_response(self, request: web.Request, status: int, retry_after: int | None) -> web.Response:
        headers = {"SPRequestGuid": str(uuid.uuid4())}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        reason = "429 TOO MANY REQUESTS" if status == 429 else f"{status} SERVICE UNAVAILABLE"
        return text_response(f"<html><body><h1>{reason}</h1></body></html>", status, "text/html", headers)

    async def handle(self, request: web.Request) -> web.Response:
        host = request.host.split(":")[0].lower()
        spo = self.state.directory.spo_host(host)
        if spo is None:
            return text_response(_NOT_FOUND_HTML, 404, "text/html; charset=utf-8",
                                 {"SPRequestGuid": str(uuid.uuid4())})
        resp = await self._handle(request, host, spo.tenant, spo.is_admin)
        resp.headers["Date"] = self.http_date()
        resp.headers.setdefault("SPRequestGuid", str(uuid.uuid4()))
        resp.headers.setdefault("MicrosoftSharePointTeamServices", "16.0.0.0")
        return resp

    async def _handle(self, request, host, tenant, is_admin) -> web.Response:
        path = request.path.lower()
        if path.startswith("/_forms/default.aspx") and request.method == "POST" \
                and request.query.get("wa") == "wsignin1.0":
            return await self.wsignin(request, host, tenant)
        if path.startswith("/_vti_bin/idcrl.svc"):
            return await self.idcrl(request, host, tenant)
        if path in ("/_api/web", "/_api/web/") and request.method == "GET" and bearer(request) is not None:
            app_only = self._app_only_web(request, host, tenant, is_admin)
            if app_only is not None:
                return app_only
        user = self._authenticate(request, host, tenant)
        if user is None:
            return self._anonymous(request, tenant)
        if isinstance(user, web.Response):
            return user
        retry = self.state.faults.throttle_user(user["upn"])
        if retry is not None:
            return self.fault_response(request, 429, retry)
        if is_admin and not SPO_ADMIN_ROLES.intersection(user["roles"]):
            return _sp_error(request, 403, "-2147024891, System.UnauthorizedAccessException", ACCESS_DENIED)
        resp = self._api(request, host, tenant, user, path)
        fedauth, rtfa = request.cookies.get("FedAuth"), request.cookies.get("rtFa")
        if resp.status < 400 and fedauth and rtfa and bearer(request) is None:
            # A cookie session is refreshed on its answers: the redirect target of wsignin1.0 and
            # contextinfo (sharepy reads rtFa/FedAuth from both responses).
            self._set_session_cookies(resp, fedauth, rtfa, self.state.scenario["settings"]["spoCookieLifetimeSeconds"])
        return resp

    # ------------------------------------------------------------------ legacy cookie sign-in

    def _refuse(self, request, upn: str | None, tenant: dict, reason: str, status: int = 403) -> web.Response:
        """The refused cookie sign-in: no cookies, and a page that does not say why (real tenants give
        an error page or a 403 without FedAuth/rtFa; no published text names the reason)."""
        self.state.log_signin(user=upn, tenant=tenant, path="spoSignin", ip=self.state.client_ip(request), app_id=None, resource=None,
                              decision=None, error_code=reason)
        title = "403 FORBIDDEN" if status == 403 else f"{status} UNAUTHORIZED"
        return text_response(f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>",
                             status, "text/html; charset=utf-8")

    def _service_token(self, raw: str, tenant: dict) -> dict | None:
        data = self.state.tokens.unseal("spo", raw)
        if data is None or data["tid"] != tenant["id"]:
            return None
        spo = self.state.directory.spo_host(data["aud"])
        if spo is not None and spo.tenant is not tenant:
            return None
        return data

    async def wsignin(self, request: web.Request, host: str, tenant: dict) -> web.Response:
        body = (await request.read()).decode("utf-8", "replace").strip()
        data = self._service_token(_compact_token(unquote(body) if "%" in body else body), tenant)
        if data is None:
            return self._refuse(request, None, tenant, "badToken")
        reason = legacy_block_reason(tenant)
        if reason:
            return self._refuse(request, data["upn"], tenant, reason)
        retry = self.state.faults.throttle_user(data["upn"])
        if retry is not None:
            return self.fault_response(request, 429, retry)
        life = self.state.scenario["settings"]["spoCookieLifetimeSeconds"]
        fedauth = self.state.tokens.seal("FedAuth", {"upn": data["upn"], "tid": tenant["id"], "host": host}, life)
        rtfa = self.state.tokens.seal("rtFa", {"upn": data["upn"], "tid": tenant["id"]}, life)
        self.state.log_signin(user=data["upn"], tenant=tenant, path="spoSignin", ip=self.state.client_ip(request),
                              app_id=None, resource=f"https://{host}", decision=None, error_code=None)
        resp = web.Response(status=302, headers={"Location": f"https://{host}/_layouts/15/landing.aspx"})
        self._set_session_cookies(resp, fedauth, rtfa, life)
        return resp

    @staticmethod
    def _set_session_cookies(resp: web.Response, fedauth: str, rtfa: str, life: int) -> None:
        resp.set_cookie("rtFa", rtfa, domain="sharepoint.com", path="/", secure=True, httponly=True,
                        samesite="None")
        resp.set_cookie("FedAuth", fedauth, path="/", secure=True, httponly=True, max_age=life, samesite="None")

    async def idcrl(self, request: web.Request, host: str, tenant: dict) -> web.Response:
        scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
        if scheme.upper() != "BPOSIDCRL":
            return self._anonymous(request, tenant)
        data = self._service_token(_compact_token(raw), tenant)
        if data is None:
            return self._refuse(request, None, tenant, "badToken", 401)
        reason = legacy_block_reason(tenant)
        if reason:
            return self._refuse(request, data["upn"], tenant, reason, 401)
        life = self.state.scenario["settings"]["spoCookieLifetimeSeconds"]
        cookie = self.state.tokens.seal("SPOIDCRL", {"upn": data["upn"], "tid": tenant["id"], "host": host}, life)
        self.state.log_signin(user=data["upn"], tenant=tenant, path="spoSignin", ip=self.state.client_ip(request),
                              app_id=None, resource=f"https://{host}", decision=None, error_code=None)
        resp = text_response("", 200)
        resp.set_cookie("SPOIDCRL", cookie, path="/", secure=True, httponly=True, max_age=life)
        return resp

    # ------------------------------------------------------------------ authenticated requests

    def _anonymous(self, request: web.Request, tenant: dict) -> web.Response:
        if legacy_block_reason(tenant) is None:
            headers = {"X-IDCRL_AUTH_PARAMS_V1": IDCRL_PARAMS, "X-MSDAVEXT_Error": ANON_DAV_ERROR,
                       "X-Forms_Based_Auth_Required": f"https://{request.host}/_forms/default.aspx?"
                                                      "ReturnUrl=/_layouts/15/Error.aspx"}
            return _sp_error(request, 403, "-2147024891, System.UnauthorizedAccessException", ACCESS_DENIED,
                             headers)
        challenge = (f'Bearer realm="{tenant["id"]}",client_id="{SPO_APP_ID}",trusted_issuers="00000001-0000-'
                     f'0000-c000-000000000000@*,https://sts.windows.net/*/,https://login.microsoftonline.com/*/v2.0",'
                     f'authorization_uri="https://login.windows.net/common/oauth2/authorize"')
        return _sp_error(request, 401, "-2147024891, System.UnauthorizedAccessException", ACCESS_DENIED,
                         {"WWW-Authenticate": challenge})

    def _authenticate(self, request: web.Request, host: str, tenant: dict):
        """The signed-in user (scenario dict), None when anonymous, or an error response."""
        token = bearer(request)
        if token is not None:
            audiences = (f"https://{host}", SPO_APP_ID) + tuple(
                f"https://{h}" for h, s in self.state.directory.spo_hosts.items() if s.tenant is tenant)
            try:
                claims = self.state.tokens.verify(token, audiences)
            except TokenError as exc:
                return _sp_error(request, 401, "-2147024891, System.UnauthorizedAccessException",
                                 f"Invalid JWT token. {exc.reason}")
            upn = claims.get("upn")
            if claims.get("tid") != tenant["id"] or not upn:
                return _sp_error(request, 401, "-2147024891, System.UnauthorizedAccessException", ACCESS_DENIED)
            return self._active_user(request, upn)
        for kind in ("FedAuth", "SPOIDCRL"):
            data = self.state.tokens.unseal(kind, request.cookies.get(kind))
            if data is not None and data["tid"] == tenant["id"] and data["host"] == host:
                return self._active_user(request, data["upn"])
        return None

    # ------------------------------------------------------------------ app-only REST (Entra app registrations)

    def _app_only_web(self, request, host: str, tenant: dict, is_admin: bool) -> web.Response | None:
        """``GET /_api/web`` with an app-only bearer token (``idtyp: app``); None for any other token.

        Counted as ``sharepoint.app``. A token got with a client secret (``appidacr`` 1) is refused with
        401 ``{"error_description":"Unsupported app only token."}``; a certificate token (``appidacr`` 2)
        needs a ``Sites.*`` role of SharePoint (``Sites.FullControl.All`` on the admin center), else 403.
        """
        audiences = (f"https://{host}", SPO_APP_ID) + tuple(
            f"https://{h}" for h, s in self.state.directory.spo_hosts.items() if s.tenant is tenant)
        try:
            claims = self.state.tokens.verify(bearer(request), audiences)
        except TokenError:
            return None
        if claims.get("idtyp") != "app" or claims.get("upn"):
            return None
        counters = self.state.counters
        counters.hit("sharepoint.app")
        resp = self._app_only_answer(request, host, tenant, is_admin, claims)
        counters.status("sharepoint.app", resp.status)
        return resp

    def _app_only_answer(self, request, host, tenant, is_admin, claims) -> web.Response:
        if claims.get("tid") != tenant["id"]:
            return _sp_error(request, 401, "-2147024891, System.UnauthorizedAccessException", ACCESS_DENIED)
        if str(claims.get("appidacr")) == "1":
            return json_response({"error_description": "Unsupported app only token."}, 401, {
                "WWW-Authenticate": (f'Bearer realm="{tenant["id"]}",client_id="{SPO_APP_ID}",trusted_issuers='
                                     '"00000001-0000-0000-c000-000000000000@*,https://sts.windows.net/*/,'
                                     'https://login.microsoftonline.com/*/v2.0",'
                                     'authorization_uri="https://login.windows.net/common/oauth2/authorize"'),
                "x-ms-diagnostics": '3001000;reason="There has been an error authenticating the request.";'
                                    'category="invalid_client"'})
        roles = set(claims.get("roles") or [])
        allowed = {"Sites.FullControl.All"} if is_admin else {
            "Sites.Read.All", "Sites.ReadWrite.All", "Sites.Manage.All", "Sites.FullControl.All"}
        if not allowed & roles:
            return _sp_error(request, 403, "-2147024891, System.UnauthorizedAccessException", ACCESS_DENIED)
        site = f"https://{host}"
        web_info = {"Title": f"{tenant['name']} {'SharePoint admin center' if is_admin else 'Team Site'}",
                    "Url": site, "Id": str(uuid.uuid5(uuid.NAMESPACE_URL, site))}
        select = [f.strip() for f in request.query.get("$select", "").split(",") if f.strip()]
        if select:
            web_info = {k: v for k, v in web_info.items() if k in select}
        if not wants_json(request):
            return _xml_response(_xml_entry(site, "SP.Web", web_info))
        return json_response({"d": web_info} if "odata=verbose" in request.headers.get("Accept", "") else web_info)

    def _active_user(self, request, upn: str):
        user = self.state.directory.user(upn)
        if user is None or user["state"] in ("disabled", "locked"):
            return _sp_error(request, 403, "-2147024891, System.UnauthorizedAccessException", ACCESS_DENIED)
        return user

    def _api(self, request: web.Request, host: str, tenant: dict, user: dict, path: str) -> web.Response:
        verbose = "odata=verbose" in request.headers.get("Accept", "")
        as_json = wants_json(request)
        site = f"https://{host}"
        if path == "/_api/contextinfo" and request.method == "POST":
            info = {"FormDigestTimeoutSeconds": 1800,
                    "FormDigestValue": f"0x{uuid.uuid4().hex.upper()}{uuid.uuid4().hex.upper()},"
                                       f"{time.strftime('%d %b %Y %H:%M:%S -0000', time.gmtime())}",
                    "LibraryVersion": "16.0.0.0", "SiteFullUrl": site, "WebFullUrl": site,
                    "SupportedSchemaVersions": ["14.0.0.0", "15.0.0.0"]}
            if not as_json:
                return _xml_response(_xml_properties("GetContextWebInformation", "SP.ContextWebInformation", info))
            if verbose:
                info = {"d": {"GetContextWebInformation": {
                    "__metadata": {"type": "SP.ContextWebInformation"}, **info,
                    "SupportedSchemaVersions": {"__metadata": {"type": "Collection(Edm.String)"},
                                                "results": info["SupportedSchemaVersions"]}}}}
            return json_response(info)
        if path in ("/_api/web", "/_api/web/") and request.method == "GET":
            web_info = {"Title": f"{tenant['name']} {'SharePoint admin center' if '-admin' in host else 'Team Site'}",
                        "Url": site, "Id": str(uuid.uuid5(uuid.NAMESPACE_URL, site))}
            if not as_json:
                return _xml_response(_xml_entry(site, "SP.Web", web_info))
            return json_response({"d": web_info} if verbose else web_info)
        if path == "/_api/web/currentuser" and request.method == "GET":
            me = {"Id": 10, "LoginName": f"i:0#.f|membership|{user['upn']}", "Email": user["upn"],
                  "Title": user["displayName"], "UserPrincipalName": user["upn"],
                  "IsSiteAdmin": bool(SPO_ADMIN_ROLES.intersection(user["roles"]))}
            if not as_json:
                return _xml_response(_xml_entry(site, "SP.User", me))
            return json_response({"d": me} if verbose else me)
        if path in ("/", "/_layouts/15/landing.aspx") and request.method == "GET":
            return text_response(f"<html><body>{tenant['name']} SharePoint</body></html>", 200, "text/html")
        return _sp_error(request, 404, "-1, Microsoft.SharePoint.Client.InvalidClientQueryException",
                         f"The expression \"{request.path.lstrip('/')}\" is not valid.")
