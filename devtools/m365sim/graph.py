"""Microsoft Graph on ``graph.microsoft.com``: ``/v1.0/me`` and ``/v1.0/me/memberOf`` (directory roles),
with the bearer token checked (signature, audience, expiry) and Graph's error JSON
``{"error":{"code":"InvalidAuthenticationToken","message":...,"innerError":{"date","request-id",
"client-request-id"}}}``.

App-only tokens (``idtyp: app``, client credentials): ``GET /v1.0/sites/root`` (the tenant's root
SharePoint site; needs a ``Sites.Read.All``/``ReadWrite``/``Manage``/``FullControl`` role) and
``GET /v1.0/users`` (needs ``User.Read.All``/``User.ReadWrite.All``/``Directory.Read.All``/
``Directory.ReadWrite.All``), each counted as ``graph.app``.

The sign-in log (``/auditLogs/signIns``), Conditional Access policies and named locations and the
security-defaults policy are in :mod:`graph_audit` (app-only requests count as ``graph.app``,
delegated ones as ``graph.audit``).
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from aiohttp import web

from .graph_audit import AuditGraph
from .scenario import ROLE_TEMPLATE_IDS, stable_id
from .tokens import RESOURCE_APP_IDS, TokenError
from .webutil import Routes, bearer, json_response

AUDIENCES = ("https://graph.microsoft.com", "https://graph.microsoft.com/",
             RESOURCE_APP_IDS["https://graph.microsoft.com"])
_TOKEN_MESSAGES = {
    "empty": "Access token is empty.",
    "expired": "Access token has expired or is not yet valid.",
    "audience": "Access token validation failure. Invalid audience.",
    "signature": "Access token validation failure.",
    "malformed": "IDX14100: JWT is not well formed, there are no dots (.).\nThe token needs to be in JWS or "
                 "JWE Compact Serialization Format. (JWS): 'EncodedHeader.EndcodedPayload.EncodedSignature'. "
                 "(JWE): 'EncodedProtectedHeader.EncodedEncryptedKey.EncodedInitializationVector."
                 "EncodedCiphertext.EncodedAuthenticationTag'.",
}
_ROLE_DESCRIPTIONS = {
    "Global Administrator": "Can manage all aspects of Microsoft Entra ID and Microsoft services that use "
                            "Microsoft Entra identities.",
    "SharePoint Administrator": "Can manage all aspects of the SharePoint service.",
}


def graph_error(request: web.Request, status: int, code: str, message: str, headers: dict | None = None):
    rid = str(uuid.uuid4())
    inner = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"), "request-id": rid,
             "client-request-id": request.headers.get("client-request-id", rid)}
    h = {"request-id": rid, "client-request-id": inner["client-request-id"]}
    if headers:
        h.update(headers)
    return json_response({"error": {"code": code, "message": message, "innerError": inner}}, status, h)


#: Application permissions that let an app-only token read a site / list users (Graph permission reference).
SITE_READ_ROLES = frozenset({"Sites.Read.All", "Sites.ReadWrite.All", "Sites.Manage.All", "Sites.FullControl.All"})
USER_READ_ROLES = frozenset({"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"})


class GraphService:
    def __init__(self, state):
        self.state = state
        r = Routes()
        r.add("GET", r"/v1\.0/me/?", self.me)
        r.add("GET", r"/v1\.0/me/(?:memberOf|transitiveMemberOf)/?", self.member_of)
        self.routes = r
        a = Routes()
        a.add("GET", r"/v1\.0/sites/root/?", self.site_root)
        a.add("GET", r"/v1\.0/users/?", self.users)
        self.app_routes = a
        self.audit = AuditGraph(state, error=graph_error)

    def endpoint(self, request: web.Request) -> str:
        return "graph"

    def fault_response(self, request: web.Request, status: int, retry_after: int | None) -> web.Response:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        if status == 429:
            return graph_error(request, 429, "TooManyRequests", "Too many requests.", headers)
        return graph_error(request, status, "serviceNotAvailable", "Service unavailable.", headers)

    async def handle(self, request: web.Request) -> web.Response:
        challenge = {"WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/'
                                         'common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"'}
        try:
            claims = self.state.tokens.verify(bearer(request), AUDIENCES)
        except TokenError as exc:
            return graph_error(request, 401, "InvalidAuthenticationToken", _TOKEN_MESSAGES[exc.reason], challenge)
        audit_handler, audit_groups, _ = self.audit.routes.match(request.method, request.path)
        if audit_handler is not None:  # graph_audit.py: sign-in log, Conditional Access, security defaults
            counter = "graph.app" if claims.get("idtyp") == "app" else "graph.audit"
            self.state.counters.hit(counter)
            response = await audit_handler(request, claims, **audit_groups)
            self.state.counters.status(counter, response.status)
            return response
        if claims.get("idtyp") == "app":
            app_handler, _, _ = self.app_routes.match(request.method, request.path)
            if app_handler is not None:
                self.state.counters.hit("graph.app")
                response = await app_handler(request, claims)
                self.state.counters.status("graph.app", response.status)
                return response
        handler, groups, known = self.routes.match(request.method, request.path)
        if handler is None:
            segment = request.path.strip("/").split("/")[-1]
            return graph_error(request, 405 if known else 400, "BadRequest" if not known else "Request_BadRequest",
                               f"Resource not found for the segment '{segment}'.")
        if claims.get("idtyp") == "app" or "upn" not in claims:
            return graph_error(request, 400, "BadRequest", "/me request is only valid with delegated "
                               "authentication flow.")
        user = self.state.directory.user(claims["upn"])
        if user is None or user["id"] != claims.get("oid"):
            return graph_error(request, 404, "Request_ResourceNotFound", f"Resource '{claims.get('oid')}' does not "
                               "exist or one of its queried reference-property objects are not present.")
        return await handler(request, claims, user)

    async def me(self, request, claims, user) -> web.Response:
        first, _, last = user["displayName"].partition(" ")
        return json_response({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
            "businessPhones": [], "displayName": user["displayName"], "givenName": first,
            "jobTitle": None, "mail": user["upn"], "mobilePhone": None, "officeLocation": None,
            "preferredLanguage": None, "surname": last or None, "userPrincipalName": user["upn"],
            "id": user["id"]})

    async def member_of(self, request, claims, user) -> web.Response:
        tid = claims["tid"]
        roles = [{"@odata.type": "#microsoft.graph.directoryRole",
                  "id": stable_id("directoryRole", tid, name), "deletedDateTime": None,
                  "description": _ROLE_DESCRIPTIONS.get(name, name), "displayName": name,
                  "roleTemplateId": ROLE_TEMPLATE_IDS[name]} for name in user["roles"]]
        return json_response({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#directoryObjects",
                              "value": roles})

    # ------------------------------------------------------------------ app-only

    async def site_root(self, request, claims) -> web.Response:
        """``GET /v1.0/sites/root``: what a backup product probes first (it needs the sites)."""
        roles = set(claims.get("roles") or [])
        if not roles and not claims.get("scp"):
            return graph_error(request, 403, "AccessDenied", "Either scp or roles claim need to be present in the token.")
        if not SITE_READ_ROLES & roles:
            return graph_error(request, 403, "accessDenied", "Access denied")
        tenant = self.state.directory.tenant(str(claims.get("tid", "")))
        if tenant is None or not tenant.get("sharepoint"):
            return graph_error(request, 404, "itemNotFound", "Requested site could not be found")
        host = f"{tenant['sharepoint']['name']}.sharepoint.com"
        site_id, web_id = stable_id("site", host), stable_id("web", host)
        return json_response({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#sites/$entity",
            "createdDateTime": "2020-01-01T00:00:00Z", "description": "", "id": f"{host},{site_id},{web_id}",
            "lastModifiedDateTime": "2026-01-01T00:00:00Z", "name": "", "webUrl": f"https://{host}",
            "displayName": "Communication site", "root": {}, "siteCollection": {"hostname": host}})

    async def users(self, request, claims) -> web.Response:
        """``GET /v1.0/users``: the directory's users, for an app with a user-read role."""
        if not USER_READ_ROLES & set(claims.get("roles") or []):
            return graph_error(request, 403, "Authorization_RequestDenied",
                               "Insufficient privileges to complete the operation.")
        tenant = self.state.directory.tenant(str(claims.get("tid", "")))
        users = tenant["users"] if tenant else []
        return json_response({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users", "value": [
            {"businessPhones": [], "displayName": u["displayName"], "givenName": u["displayName"].partition(" ")[0],
             "jobTitle": None, "mail": u["upn"], "mobilePhone": None, "officeLocation": None,
             "preferredLanguage": None, "surname": u["displayName"].partition(" ")[2] or None,
             "userPrincipalName": u["upn"], "id": u["id"]} for u in users]})
