"""SharePoint Online hosts (``{name}.sharepoint.com``, ``{name}-admin.sharepoint.com`` and custom admin
center URLs): the legacy cookie sign-in that follows extSTS.srf, and a few REST endpoints.

* ``POST /_forms/default.aspx?wa=wsignin1.0`` with the ``t=...&p=`` service token → 302 with
  ``rtFa`` (domain ``sharepoint.com``) and ``FedAuth`` (host) cookies.
* ``GET /_vti_bin/idcrl.svc/`` with ``Authorization: BPOSIDCRL <token>`` → ``SPOIDCRL`` cookie (the
  CSOM ``SharePointOnlineCredentials`` path).
* Anonymous requests: 403 with ``X-IDCRL_AUTH_PARAMS_V1`` (and ``X-MSDAVEXT_Error: 917656``) while the
  tenant accepts legacy (IDCRL) sign-in; 401 with a ``Bearer realm`` challenge and no IDCRL header
  when SharePoint blocks apps that don't use modern authentication or IDCRL is blocked/retired.
  The cookie sign-in itself is then refused with 403 and no cookies.
* ``POST /_api/contextinfo`` (FormDigestValue), ``GET /_api/web``, ``GET /_api/web/currentuser``.
  Admin-center hosts require the SharePoint Administrator or Global Administrator role.
* Unknown ``*.sharepoint.com`` hosts (no such tenant / wrong custom URL) → 404.
"""
from __future__ import annotations

import time
import uuid
from urllib.parse import unquote

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


def _compact_token(text: str) -> str:
    """The sealed token out of the compact ``t=<token>&p=`` form (or a bare token)."""
    text = text.strip()
    if text.startswith("t="):
        text = text[2:]
    return text.split("&", 1)[0]


def _sp_error(request: web.Request, status: int, code: str, text: str, headers: dict | None = None):
    accept = request.headers.get("Accept", "")
    err = {"code": code, "message": {"lang": "en-US", "value": text}}
    body = {"error": err} if "odata=verbose" in accept else {"odata.error": err}
    return json_response(body, status, headers)


class SharePointService:
    def __init__(self, state):
        self.state = state

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
        return self._api(request, host, tenant, user, path)

    # ------------------------------------------------------------------ legacy cookie sign-in

    def _refuse(self, request, upn: str | None, tenant: dict, reason: str, status: int = 403) -> web.Response:
        self.state.log_signin(user=upn, tenant=tenant, path="spoSignin", ip=self.state.client_ip(request), app_id=None, resource=None,
                              decision=None, error_code=reason)
        text = {"legacyAuthBlocked": "Access denied. This organization blocks apps that don't use modern "
                                     "authentication.",
                "idcrlBlockedByDefault": "Access denied. Legacy (IDCRL) authentication is blocked for this "
                                         "organization.",
                "idcrlRetired": "Access denied. Legacy (IDCRL) authentication has been retired.",
                "badToken": "The security token is invalid or has expired."}[reason]
        return text_response(f"<html><body><h1>{'403 FORBIDDEN' if status == 403 else status}</h1><p>{text}</p>"
                             "</body></html>", status, "text/html; charset=utf-8")

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
        resp.set_cookie("rtFa", rtfa, domain="sharepoint.com", path="/", secure=True, httponly=True,
                        samesite="None")
        resp.set_cookie("FedAuth", fedauth, path="/", secure=True, httponly=True, max_age=life, samesite="None")
        return resp

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

    def _active_user(self, request, upn: str):
        user = self.state.directory.user(upn)
        if user is None or user["state"] in ("disabled", "locked"):
            return _sp_error(request, 403, "-2147024891, System.UnauthorizedAccessException", ACCESS_DENIED)
        return user

    def _api(self, request: web.Request, host: str, tenant: dict, user: dict, path: str) -> web.Response:
        verbose = "odata=verbose" in request.headers.get("Accept", "")
        site = f"https://{host}"
        if path == "/_api/contextinfo" and request.method == "POST":
            info = {"FormDigestTimeoutSeconds": 1800,
                    "FormDigestValue": f"0x{uuid.uuid4().hex.upper()}{uuid.uuid4().hex.upper()},"
                                       f"{time.strftime('%d %b %Y %H:%M:%S -0000', time.gmtime())}",
                    "LibraryVersion": "16.0.0.0", "SiteFullUrl": site, "WebFullUrl": site,
                    "SupportedSchemaVersions": ["14.0.0.0", "15.0.0.0"]}
            if verbose:
                info = {"d": {"GetContextWebInformation": {
                    "__metadata": {"type": "SP.ContextWebInformation"}, **info,
                    "SupportedSchemaVersions": {"__metadata": {"type": "Collection(Edm.String)"},
                                                "results": info["SupportedSchemaVersions"]}}}}
            return json_response(info)
        if path in ("/_api/web", "/_api/web/") and request.method == "GET":
            web_info = {"Title": f"{tenant['name']} {'SharePoint admin center' if '-admin' in host else 'Team Site'}",
                        "Url": site, "Id": str(uuid.uuid5(uuid.NAMESPACE_URL, site))}
            return json_response({"d": web_info} if verbose else web_info)
        if path == "/_api/web/currentuser" and request.method == "GET":
            me = {"Id": 10, "LoginName": f"i:0#.f|membership|{user['upn']}", "Email": user["upn"],
                  "Title": user["displayName"], "UserPrincipalName": user["upn"],
                  "IsSiteAdmin": bool(SPO_ADMIN_ROLES.intersection(user["roles"]))}
            return json_response({"d": me} if verbose else me)
        if path in ("/", "/_layouts/15/landing.aspx") and request.method == "GET":
            return text_response(f"<html><body>{tenant['name']} SharePoint</body></html>", 200, "text/html")
        return _sp_error(request, 404, "-1, Microsoft.SharePoint.Client.InvalidClientQueryException",
                         f"The expression \"{request.path.lstrip('/')}\" is not valid.")
