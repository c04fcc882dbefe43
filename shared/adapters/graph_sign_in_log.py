"""The tenant's sign-in log and Conditional Access policies through Microsoft Graph, read with a
diagnosis app profile's token: :class:`GraphSignInDiagnostics`.

* ``GET /v1.0/auditLogs/signIns?$filter=correlationId eq '…'`` (AuditLog.Read.All, Entra ID P1):
  the ``signIn`` of one token request (Entra records the ``client-request-id`` the product sends as
  its ``correlationId``); without a correlation id, the newest failed sign-in of the user (or, on
  ``/beta`` with ``signInEventTypes``, of the app's service principal) since a time. Entries arrive
  minutes after the sign-in: an empty page means "not yet".
* ``GET /v1.0/identity/conditionalAccess/policies/{id}`` (Policy.Read.All): state, grant controls,
  location conditions, and whether Microsoft manages it.
* ``GET /v1.0/policies/identitySecurityDefaultsEnforcementPolicy`` (Policy.Read.All): ``isEnabled``.

403 answers become :class:`~shared.domain.errors.DiagnosisRefused` naming what is missing: on the log,
``Authentication_MSGraphPermissionMissing`` ("… required MSGraph permissions AuditLog.Read.All";
microsoft-graph-docs-contrib#8997, graph-explorer-v4#2731) and
``Authentication_RequestFromNonPremiumTenantOrB2CTenant`` (no Entra ID P1; msgraph-sdk-dotnet#1006);
on policies, ``AccessDenied`` "required scopes are missing in the token" (Policy.Read.All;
AlexFilipin/ConditionalAccess#10). No answer, 429 and 5xx become DependencyUnavailable.

Graph lists client-credentials sign-ins only on ``/beta`` with
``signInEventTypes/any(t: t eq 'servicePrincipal')`` (msgraph-sdk-powershell#1261); v1.0 lists
interactive user sign-ins, ROPC included. Graph has no "Microsoft-managed" property: such policies'
display names start with "Microsoft-managed" (Learn, "Microsoft-managed policies"). One request each, on
the probes' :class:`~shared.adapters.upstream_http.UpstreamHttp` (timeout, deadline, no redirects).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable
from urllib.parse import quote

import requests

from shared.adapters.upstream_http import UpstreamHttp, first_line, json_object
from shared.domain.diagnosis import DIAGNOSIS_PERMISSIONS, AppliedPolicy, PolicyFacts, SignInEntry
from shared.domain.errors import DependencyUnavailable, DiagnosisRefused
from shared.domain.ports import SignInDiagnostics
from shared.domain.probes import Grant

#: Graph's error code for a tenant without Entra ID P1 (or a B2C tenant) on the sign-in log.
NON_PREMIUM = "Authentication_RequestFromNonPremiumTenantOrB2CTenant"
P1_LICENCE = "Microsoft Entra ID P1"


class GraphSignInDiagnostics(SignInDiagnostics):
    """:param UpstreamHttp http: the probes' HTTP. :param str graph_url: ``https://{graph_host}``."""

    def __init__(self, http: UpstreamHttp, *, graph_url: str):
        self._http = http
        self._graph = graph_url

    def find_sign_in(self, grant: Grant, *, correlation_id: str | None, user: str | None, app_id: str | None,
                     since: datetime) -> SignInEntry | None:
        if correlation_id:
            found = self._sign_ins(grant, "v1.0", f"correlationId eq '{_quoted(correlation_id)}'")
            if not found and app_id:
                found = self._sign_ins(grant, "beta", f"correlationId eq '{_quoted(correlation_id)}' and "
                                                      "signInEventTypes/any(t: t eq 'servicePrincipal')")
            if found:
                return found[0]
        after = since.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        if user:
            rows = self._sign_ins(grant, "v1.0", f"userPrincipalName eq '{_quoted(user)}' and createdDateTime ge {after}")
        elif app_id:
            rows = self._sign_ins(grant, "beta", f"appId eq '{_quoted(app_id)}' and createdDateTime ge {after} and "
                                                 "signInEventTypes/any(t: t eq 'servicePrincipal')")
        else:
            return None
        failed = [r for r in rows if r.error_code]
        return max(failed, key=lambda r: r.created) if failed else None

    def policies(self, grant: Grant, ids: Iterable[str]) -> dict[str, PolicyFacts]:
        out = {}
        for policy_id in dict.fromkeys(ids):
            body = self._get(grant, f"/v1.0/identity/conditionalAccess/policies/{quote(policy_id, safe='')}",
                             missing_ok=True)
            if body is not None:
                out[policy_id] = _policy(body)
        return out

    def security_defaults(self, grant: Grant) -> bool:
        body = self._get(grant, "/v1.0/policies/identitySecurityDefaultsEnforcementPolicy") or {}
        return bool(body.get("isEnabled"))

    # -- plumbing ---------------------------------------------------------------------------
    def _sign_ins(self, grant: Grant, version: str, flt: str) -> list[SignInEntry]:
        body = self._get(grant, f"/{version}/auditLogs/signIns?$filter={quote(flt, safe='')}&$top=50") or {}
        return [_sign_in(v) for v in body.get("value") or [] if isinstance(v, dict)]

    def _get(self, grant: Grant, path: str, *, missing_ok: bool = False) -> dict[str, Any] | None:
        try:
            resp = self._http.request("GET", self._graph + path, step="diagnosis",
                                      headers={"Authorization": f"Bearer {grant.reveal()}",
                                               "Accept": "application/json"})
        except (requests.RequestException, OSError) as exc:
            raise DependencyUnavailable("Microsoft Graph", retry_after=30) from exc
        if resp.status_code == 200:
            return json_object(resp.text) or {}
        error = (json_object(resp.text) or {}).get("error") or {}
        code, message = str(error.get("code") or ""), first_line(str(error.get("message") or "")) or ""
        if resp.status_code == 404 and missing_ok:
            return None
        if resp.status_code == 403 and code == NON_PREMIUM:
            raise DiagnosisRefused(f"The tenant's sign-in log needs a {P1_LICENCE} licence ({code}: {message}).",
                                   (P1_LICENCE,))
        if resp.status_code in (401, 403):
            named = tuple(p for p in DIAGNOSIS_PERMISSIONS if p.lower() in message.lower())
            needed = named or (("AuditLog.Read.All",) if "/auditLogs/" in path else ("Policy.Read.All",))
            raise DiagnosisRefused(f"Microsoft Graph refused the diagnosis app ({code or resp.status_code}: {message}); "
                                   "it needs the application permission " + " and ".join(needed) + ".", needed)
        retry = resp.headers.get("Retry-After")
        raise DependencyUnavailable("Microsoft Graph", retry_after=int(retry) if retry and retry.isdigit() else 30)


def _quoted(value: str) -> str:
    return value.replace("'", "''")  # OData string literal


def _when(text: Any) -> datetime:
    try:
        value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=timezone.utc)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _sign_in(v: dict[str, Any]) -> SignInEntry:
    status = v.get("status") or {}
    code = status.get("errorCode")
    return SignInEntry(
        id=str(v.get("id") or ""), created=_when(v.get("createdDateTime")), correlation_id=v.get("correlationId"),
        user_principal_name=(v.get("userPrincipalName") or None), app_id=v.get("appId"),
        ip_address=v.get("ipAddress"), error_code=int(code) if isinstance(code, int) and code else None,
        conditional_access_status=v.get("conditionalAccessStatus"),
        policies=tuple(AppliedPolicy(id=str(p.get("id") or ""), display_name=str(p.get("displayName") or ""),
                                     result=str(p.get("result") or ""),
                                     enforced_grant_controls=tuple(p.get("enforcedGrantControls") or ()))
                       for p in v.get("appliedConditionalAccessPolicies") or [] if isinstance(p, dict)))


def _policy(v: dict[str, Any]) -> PolicyFacts:
    conditions = v.get("conditions") or {}
    locations = conditions.get("locations") or {}
    grant = v.get("grantControls") or {}
    return PolicyFacts(
        id=str(v.get("id") or ""), display_name=str(v.get("displayName") or ""), state=str(v.get("state") or ""),
        microsoft_managed=_microsoft_managed(v), built_in_controls=tuple(grant.get("builtInControls") or ()),
        includes_locations=bool(locations.get("includeLocations")),
        excludes_locations=bool(locations.get("excludeLocations")),
        workload_identities=bool(conditions.get("clientApplications")))


MICROSOFT_MANAGED_PREFIX = "microsoft-managed"


def _microsoft_managed(v: dict[str, Any]) -> bool:
    """Graph has no property for it; Microsoft names its policies "Microsoft-managed: …"."""
    return str(v.get("displayName") or "").strip().lower().startswith(MICROSOFT_MANAGED_PREFIX)
