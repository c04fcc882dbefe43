"""Microsoft Graph on ``graph.microsoft.com``: ``/v1.0/me`` and ``/v1.0/me/memberOf`` (directory roles),
with the bearer token checked (signature, audience, expiry) and Graph's error JSON
``{"error":{"code":"InvalidAuthenticationToken","message":...,"innerError":{"date","request-id",
"client-request-id"}}}``.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from aiohttp import web

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


class GraphService:
    def __init__(self, state):
        self.state = state
        r = Routes()
        r.add("GET", r"/v1\.0/me/?", self.me)
        r.add("GET", r"/v1\.0/me/(?:memberOf|transitiveMemberOf)/?", self.member_of)
        self.routes = r

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
