"""Microsoft Graph's sign-in log, Conditional Access policies, named locations and security defaults,
in the real shapes (each field and answer is cited in the simulator README, "Sign-in log, Conditional
Access and security defaults through Graph"):

* ``GET /{v1.0|beta}/auditLogs/signIns[/{id}]`` — the tenant's sign-ins from the simulator's own log
  (:meth:`SimState.log_signin`), newest first, listed ``settings.signInLogDelaySeconds`` after each
  sign-in; ``$filter`` (``correlationId``, ``userPrincipalName``, ``userId``, ``appId``, ``id``,
  ``ipAddress``, ``clientAppUsed``, ``conditionalAccessStatus``, ``status/errorCode`` with ``eq``/``ne``,
  ``createdDateTime`` with ``ge``/``gt``/``le``/``lt``, ``startsWith(...)``, joined by ``and``; beta also
  ``signInEventTypes/any(t: t eq '...' or ...)``), ``$top`` (at most 1000) and ``@odata.nextLink``
  (``$skiptoken``). v1.0 lists interactive user sign-ins (ROPC, extSTS.srf); service-principal
  (client-credentials) sign-ins are only in beta, with a ``signInEventTypes`` filter naming them.
  Needs ``AuditLog.Read.All`` and an Entra ID P1/P2 tenant; ``appliedConditionalAccessPolicies`` is
  empty unless the caller may also read Conditional Access (``Policy.Read.All`` ...).
* ``GET /{v}/identity/conditionalAccess/policies[/{id}]`` and ``.../namedLocations[/{id}]`` — the
  scenario's policies as ``conditionalAccessPolicy`` and their IP ranges as ``ipNamedLocation``.
* ``GET /{v}/policies/identitySecurityDefaultsEnforcementPolicy`` — the tenant's security defaults.
"""
from __future__ import annotations

import base64
import json
import re
import time
from datetime import datetime, timezone
from urllib.parse import quote, urlencode

from aiohttp import web

from .scenario import DEFAULT_POLICY_DATE, has_premium, policy_display_name, stable_id
from .tokens import RESOURCE_APP_IDS
from .webutil import Routes, json_response

GRAPH = "https://graph.microsoft.com"
SPO_APP_ID = RESOURCE_APP_IDS["sharepoint"]
GRAPH_APP_ID = RESOURCE_APP_IDS[GRAPH]
_RESOURCE_NAMES = {GRAPH_APP_ID: "Microsoft Graph", SPO_APP_ID: "Office 365 SharePoint Online"}

#: Application (or delegated) permissions each endpoint takes (Graph permissions reference).
AUDIT_READ = frozenset({"AuditLog.Read.All"})
CA_READ = frozenset({"Policy.Read.All", "Policy.Read.ConditionalAccess", "Policy.ReadWrite.ConditionalAccess"})
SECURITY_DEFAULTS_READ = frozenset({"Policy.Read.All", "Policy.ReadWrite.SecurityDefaults"})

PAGE_MAX = 1000
EVENT_TYPES = ("interactiveUser", "nonInteractiveUser", "servicePrincipal", "managedIdentity")
USER_EVENT_PATHS = {"ropc": "interactiveUser", "legacySts": "interactiveUser"}
APP_EVENT_PATHS = {"clientCredentials": "servicePrincipal"}
_CLIENT_APP = {"ropc": "Mobile Apps and Desktop clients", "legacySts": "Other clients"}
_PROTOCOL = {"ropc": "ropc", "legacySts": "none", "clientCredentials": "none"}
_STATE = {"on": "enabled", "off": "disabled", "reportOnly": "enabledForReportingButNotEnforced"}
#: scenario grant -> conditionalAccessGrantControls.builtInControls value
_BUILT_IN = {"block": "block", "mfa": "mfa", "compliantDevice": "compliantDevice", "domainJoined": "domainJoinedDevice"}
#: scenario grant -> appliedConditionalAccessPolicy.enforcedGrantControls value (as sign-in logs spell them)
_ENFORCED = {"block": "Block", "mfa": "Mfa", "compliantDevice": "RequireCompliantDevice",
             "domainJoined": "RequireDomainJoinedDevice"}
#: status.additionalDetails where a captured sign-in shows one (others: null)
_ADDITIONAL_DETAILS = {50126: "The user didn't enter the right credentials. \u00a0It's expected to see some number "
                              "of these errors in your logs due to users making mistakes."}
SECURITY_DEFAULTS_ID = "00000000-0000-0000-0000-000000000005"
SECURITY_DEFAULTS_DESCRIPTION = (
    "Security defaults is a set of basic identity security mechanisms recommended by Microsoft. When enabled, "
    "these recommendations will be automatically enforced in your organization. Administrators and users will be "
    "better protected from common identity related attacks.")


def _ests_time(ts: float) -> str:
    """Graph's 7-digit sign-in time (``2020-03-13T19:15:41.6195833Z``)."""
    dt = datetime.fromtimestamp(ts, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}0Z"


def _parse_time(text: str) -> datetime:
    """An OData DateTimeOffset literal (``2024-01-01``, ``2024-01-01T10:00:00Z``, 7 fractional digits)."""
    t = text.strip().strip("'")
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})(?:T(\d{2}:\d{2}(?::\d{2})?)(\.\d+)?(Z|[+-]\d{2}:\d{2})?)?", t)
    if not m:
        raise ValueError(t)
    date, clock, frac, zone = m.groups()
    clock = clock or "00:00:00"
    if len(clock) == 5:
        clock += ":00"
    micro = (frac or ".0")[1:7].ljust(6, "0")
    zone = "+00:00" if zone in (None, "Z") else zone
    return datetime.fromisoformat(f"{date}T{clock}.{micro}{zone}")


class _FilterError(ValueError):
    """An unsupported or malformed ``$filter``: Graph's 400 with the given message."""


def _split_top(text: str, word: str) -> list[str]:
    """Split ``text`` on `` word `` outside quotes and parentheses (case-insensitive)."""
    parts, depth, quoted, start, i = [], 0, False, 0, 0
    low, token = text.lower(), f" {word} "
    while i < len(text):
        c = text[i]
        if c == "'":
            quoted = not quoted
        elif not quoted and c == "(":
            depth += 1
        elif not quoted and c == ")":
            depth -= 1
        elif not quoted and depth == 0 and low.startswith(token, i):
            parts.append(text[start:i])
            i += len(token)
            start = i
            continue
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _strip_parens(text: str) -> str:
    while text.startswith("(") and text.endswith(")"):
        depth = 0
        for i, c in enumerate(text):
            depth += c == "("
            depth -= c == ")"
            if depth == 0 and i < len(text) - 1:
                return text
        text = text[1:-1].strip()
    return text


def _literal(raw: str):
    raw = raw.strip()
    if raw.startswith("'") and raw.endswith("'") and len(raw) >= 2:
        return raw[1:-1].replace("''", "'")
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if raw.lower() == "null":
        return None
    if re.fullmatch(r"-?\d+", raw):
        return int(raw)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}.*", raw):
        return _parse_time(raw)
    raise _FilterError("Invalid filter clause")


_FILTERABLE = {"id", "correlationId", "userPrincipalName", "userId", "userDisplayName", "appId", "appDisplayName",
               "ipAddress", "clientAppUsed", "conditionalAccessStatus", "createdDateTime", "resourceId",
               "resourceDisplayName", "isInteractive", "status/errorCode", "servicePrincipalId",
               "servicePrincipalName"}
_CMP = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "ge": lambda a, b: a >= b,
        "gt": lambda a, b: a > b, "le": lambda a, b: a <= b, "lt": lambda a, b: a < b}


def _value(record: dict, prop: str):
    value = record
    for part in prop.split("/"):
        value = value.get(part) if isinstance(value, dict) else None
    if prop == "createdDateTime" and value:
        return _parse_time(value)
    return value


def parse_filter(text: str, *, beta: bool):
    """(predicate over a signIn record, event types asked for or None) of a ``$filter``.

    :raises _FilterError: with Graph's message for what is not supported.
    """
    clauses = _split_top(text.strip(), "and") if text.strip() else []
    checks, event_types = [], None
    for clause in clauses:
        clause = _strip_parens(clause)
        m = re.fullmatch(r"signInEventTypes/any\(\s*(\w+)\s*:\s*(.+)\)", clause, re.IGNORECASE | re.DOTALL)
        if m:
            if not beta:
                raise _FilterError("Could not find a property named 'signInEventTypes' on type 'microsoft.graph.signIn'.")
            var, body = m.groups()
            wanted, unwanted = set(), set()
            for alt in _split_top(_strip_parens(body), "or"):
                am = re.fullmatch(rf"{re.escape(var)}\s+(eq|ne)\s+'([^']*)'", _strip_parens(alt), re.IGNORECASE)
                if not am:
                    raise _FilterError("Invalid filter clause")
                (wanted if am.group(1).lower() == "eq" else unwanted).add(am.group(2))
            # an entry has one type t: the lambda holds when t is one of the eq values or differs from a ne value
            chosen = {t for t in EVENT_TYPES if t in wanted or any(t != u for u in unwanted)}
            event_types = chosen if event_types is None else event_types & chosen
            continue
        m = re.fullmatch(r"startsWith\(\s*([\w/]+)\s*,\s*('(?:[^']|'')*')\s*\)", clause, re.IGNORECASE)
        if m:
            prop, prefix = m.group(1), _literal(m.group(2))
            if prop not in _FILTERABLE:
                raise _FilterError(f"Could not find a property named '{prop}' on type 'microsoft.graph.signIn'.")
            checks.append(lambda r, p=prop, x=prefix: str(_value(r, p) or "").lower().startswith(x.lower()))
            continue
        m = re.fullmatch(r"([\w/]+)\s+(eq|ne|ge|gt|le|lt)\s+(.+)", clause, re.IGNORECASE | re.DOTALL)
        if not m:
            raise _FilterError("Invalid filter clause")
        prop, op, raw = m.group(1), m.group(2).lower(), m.group(3)
        if prop not in _FILTERABLE:
            raise _FilterError(f"Could not find a property named '{prop}' on type 'microsoft.graph.signIn'.")
        want = _literal(raw)
        if prop == "createdDateTime" and not isinstance(want, datetime):
            raise _FilterError("Invalid filter clause")

        def check(r, p=prop, o=op, w=want):
            have = _value(r, p)
            if have is None or w is None:
                return _CMP[o](have, w) if o in ("eq", "ne") else False
            try:
                return _CMP[o](have, w)
            except TypeError:
                return False
        checks.append(check)
    return (lambda r: all(c(r) for c in checks)), event_types


def _skiptoken(offset: int, upper: float) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset, "u": upper}).encode()).decode().rstrip("=")


def _read_skiptoken(token: str) -> tuple[int, float]:
    data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    return int(data["o"]), float(data["u"])


class AuditGraph:
    """The Graph routes of this module; :meth:`GraphService.handle` calls them after the token check."""

    def __init__(self, state, *, error):
        """:param error: Graph's error answer ``(request, status, code, message)`` (graph.py's)."""
        self.state = state
        self._graph_error = error
        r = Routes()
        v = r"/(?P<version>v1\.0|beta)"
        r.add("GET", v + r"/auditLogs/signIns/?", self.sign_ins)
        r.add("GET", v + r"/auditLogs/signIns/(?P<item>[^/]+)", self.sign_in)
        r.add("GET", v + r"/identity/conditionalAccess/policies/?", self.policies)
        r.add("GET", v + r"/identity/conditionalAccess/policies/(?P<item>[^/]+)", self.policy)
        r.add("GET", v + r"/identity/conditionalAccess/namedLocations/?", self.named_locations)
        r.add("GET", v + r"/identity/conditionalAccess/namedLocations/(?P<item>[^/]+)", self.named_location)
        r.add("GET", v + r"/policies/identitySecurityDefaultsEnforcementPolicy/?", self.security_defaults)
        self.routes = r

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _granted(claims: dict) -> set[str]:
        """Permissions of the token: application roles, or delegated scopes."""
        return set(claims.get("roles") or []) | set((claims.get("scp") or "").split())

    def _tenant(self, claims: dict) -> dict | None:
        return self.state.directory.tenant(str(claims.get("tid", "")))

    def _error(self, request, status, code, message):
        return self._graph_error(request, status, code, message)

    # ------------------------------------------------------------------ sign-in log

    def _visible(self, tenant: dict) -> list[dict]:
        """The tenant's Entra sign-ins that have been ingested, newest first."""
        delay = float(self.state.scenario["settings"].get("signInLogDelaySeconds", 0))
        now = time.time()
        entries = [e for e in self.state.signins
                   if e.get("tenantId") == tenant["id"] and e["path"] in {**USER_EVENT_PATHS, **APP_EVENT_PATHS}
                   and now >= e["epoch"] + delay]
        entries.sort(key=lambda e: e["epoch"], reverse=True)
        return entries

    def _deny_log(self, request, claims, tenant):
        if not AUDIT_READ & self._granted(claims):
            return self._error(request, 403, "Authentication_MSGraphPermissionMissing",
                               "Calling principal does not have required MSGraph permissions AuditLog.Read.All")
        if tenant is None or not has_premium(tenant):
            return self._error(request, 403, "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
                               "Neither tenant is B2C or tenant doesn't have premium license")
        return None

    async def sign_ins(self, request: web.Request, claims: dict, version: str) -> web.Response:
        tenant = self._tenant(claims)
        denied = self._deny_log(request, claims, tenant)
        if denied is not None:
            return denied
        beta = version.lower() == "beta"
        try:
            predicate, event_types = parse_filter(request.query.get("$filter", ""), beta=beta)
        except _FilterError as exc:
            return self._error(request, 400, "BadRequest", str(exc))
        top = request.query.get("$top")
        try:
            size = PAGE_MAX if top is None else max(1, min(PAGE_MAX, int(top)))
            offset, upper = _read_skiptoken(request.query["$skiptoken"]) if "$skiptoken" in request.query \
                else (0, None)
        except (ValueError, KeyError, json.JSONDecodeError):
            return self._error(request, 400, "BadRequest", "Invalid request")
        wanted = event_types if event_types is not None else {"interactiveUser"}
        with_ca = bool(CA_READ & self._granted(claims))
        entries = self._visible(tenant)
        if upper is None:
            upper = entries[0]["epoch"] if entries else 0.0
        records = []
        for e in entries:
            if e["epoch"] > upper:
                continue  # arrived after the first page: a later listing shows it
            kind = USER_EVENT_PATHS.get(e["path"]) or APP_EVENT_PATHS.get(e["path"])
            if kind not in wanted:
                continue
            record = self.sign_in_record(e, tenant, beta=beta, with_ca=with_ca)
            if predicate(record):
                records.append(record)
        page = records[offset:offset + size]
        body = {"@odata.context": f"{GRAPH}/{version}/$metadata#auditLogs/signIns"}
        if offset + size < len(records):
            params = {k: v for k, v in request.query.items() if k != "$skiptoken"}
            params["$skiptoken"] = _skiptoken(offset + size, upper)
            body["@odata.nextLink"] = f"{GRAPH}/{version}/auditLogs/signIns?" + urlencode(
                params, quote_via=quote, safe="$'(),:")
        body["value"] = page
        return json_response(body, headers=self._ids(request))

    async def sign_in(self, request: web.Request, claims: dict, version: str, item: str) -> web.Response:
        tenant = self._tenant(claims)
        denied = self._deny_log(request, claims, tenant)
        if denied is not None:
            return denied
        with_ca = bool(CA_READ & self._granted(claims))
        for e in self._visible(tenant):
            if e["id"] == item.lower():
                body = {"@odata.context": f"{GRAPH}/{version}/$metadata#auditLogs/signIns/$entity"}
                body.update(self.sign_in_record(e, tenant, beta=version.lower() == "beta", with_ca=with_ca))
                return json_response(body, headers=self._ids(request))
        return self._error(request, 404, "Request_ResourceNotFound",
                           f"Resource '{item}' does not exist or one of its queried reference-property objects "
                           "are not present.")

    @staticmethod
    def _ids(request) -> dict:
        rid = request.headers.get("client-request-id")
        return {"client-request-id": rid} if rid else {}

    def sign_in_record(self, e: dict, tenant: dict, *, beta: bool, with_ca: bool) -> dict:
        """One ``signIn`` as Graph returns it, from a sign-in log entry of the simulator."""
        directory = self.state.directory
        app_sign_in = e["path"] in APP_EVENT_PATHS
        user = directory.user(e["user"]) if e.get("user") else None
        code = e.get("errorCode")
        resource = e.get("resource") or ""
        resource_id = GRAPH_APP_ID if resource.rstrip("/") == GRAPH else (SPO_APP_ID if resource else None)
        app_id = e.get("appId") or (SPO_APP_ID if e["path"] == "legacySts" else None)
        app_name = e.get("appDisplayName") or (_RESOURCE_NAMES[SPO_APP_ID] if e["path"] == "legacySts" else None)
        applied = []
        for p in e.get("conditionalAccess", []):
            result = p["result"]
            if p["state"] == "reportOnly" and result == "notApplied":
                result = "reportOnlyNotApplied"
            applied.append({"id": p["id"], "displayName": p.get("displayName", p["name"]),
                            "enforcedGrantControls": [_ENFORCED[p["grant"]]], "enforcedSessionControls": [],
                            "result": result})
        enforced = [p for p in e.get("conditionalAccess", []) if p["state"] == "on"]
        if any(p["result"] == "failure" for p in enforced):
            ca_status = "failure"
        elif any(p["result"] == "success" for p in enforced):
            ca_status = "success"
        else:
            ca_status = "notApplied"
        p2 = "aadPremiumP2" in tenant.get("licenses", [])
        record = {
            "id": e["id"],
            "createdDateTime": _ests_time(e["epoch"]),
            "userDisplayName": user["displayName"] if user else None,
            "userPrincipalName": (user["upn"] if user else e.get("user")) if not app_sign_in else None,
            "userId": user["id"] if user else "",
            "appId": app_id,
            "appDisplayName": app_name,
            "ipAddress": e.get("clientIp"),
            "clientAppUsed": _CLIENT_APP.get(e["path"]),
            "correlationId": e.get("correlationId"),
            "conditionalAccessStatus": ca_status,
            "isInteractive": not app_sign_in,
            "riskDetail": "none" if p2 else "hidden",
            "riskLevelAggregated": "none" if p2 else "hidden",
            "riskLevelDuringSignIn": "none" if p2 else "hidden",
            "riskState": "none",
            "riskEventTypes": [],
            "riskEventTypes_v2": [],
            "resourceDisplayName": _RESOURCE_NAMES.get(resource_id),
            "resourceId": resource_id,
            "status": {"errorCode": code if isinstance(code, int) else 0,
                       "failureReason": e.get("failureReason"),
                       "additionalDetails": _ADDITIONAL_DETAILS.get(code)},
            "deviceDetail": {"deviceId": "", "displayName": "", "operatingSystem": "", "browser": "",
                             "isCompliant": False, "isManaged": False, "trustType": ""},
            "location": {"city": None, "state": None, "countryOrRegion": None,
                         "geoCoordinates": {"altitude": None, "latitude": None, "longitude": None}},
            "appliedConditionalAccessPolicies": applied if with_ca else [],
        }
        if beta:
            sp_id = stable_id("sp", tenant["id"], app_id.lower()) if app_sign_in and app_id else ""
            record.update({
                "signInEventTypes": ["servicePrincipal" if app_sign_in else "interactiveUser"],
                "authenticationProtocol": _PROTOCOL[e["path"]],
                "clientCredentialType": e.get("clientCredentialType", "none"),
                "servicePrincipalId": sp_id,
                "servicePrincipalName": app_name if app_sign_in else None,
                "resourceTenantId": tenant["id"],
                "homeTenantId": tenant["id"],
                "userType": "member" if not app_sign_in else None,
            })
        return record

    # ------------------------------------------------------------------ Conditional Access

    def _deny_policy(self, request, claims, allowed=CA_READ):
        if not allowed & self._granted(claims):
            return self._error(request, 403, "AccessDenied",
                               "You cannot perform the requested operation, required scopes are missing in the token.")
        return None

    def named_location_list(self, tenant: dict) -> list[dict]:
        """The tenant's IP ranges as ``ipNamedLocation`` objects: one per distinct (kind, ranges) of
        its policies' ``locations`` (trustedRanges → isTrusted true; includeRanges/excludedRanges →
        false), each with a stable id."""
        seen: dict[str, dict] = {}
        for p in tenant["conditionalAccess"]:
            for kind in ("trustedRanges", "excludedRanges", "includeRanges"):
                ranges = (p.get("locations") or {}).get(kind)
                if not ranges:
                    continue
                key = stable_id("namedLocation", tenant["id"].lower(), kind, ",".join(sorted(ranges)))
                if key in seen:
                    continue
                label = {"trustedRanges": "Trusted IP ranges", "excludedRanges": "Excluded IP ranges",
                         "includeRanges": "IP ranges"}[kind]
                seen[key] = {
                    "@odata.type": "#microsoft.graph.ipNamedLocation", "id": key,
                    "displayName": f"{label} ({', '.join(ranges)})",
                    "modifiedDateTime": DEFAULT_POLICY_DATE, "createdDateTime": DEFAULT_POLICY_DATE,
                    "isTrusted": kind == "trustedRanges",
                    "ipRanges": [{"@odata.type": "#microsoft.graph.iPv6CidrRange" if ":" in r
                                  else "#microsoft.graph.iPv4CidrRange", "cidrAddress": r} for r in ranges]}
        return list(seen.values())

    def _location_id(self, tenant: dict, kind: str, ranges: list[str]) -> str:
        return stable_id("namedLocation", tenant["id"].lower(), kind, ",".join(sorted(ranges)))

    def policy_record(self, p: dict, tenant: dict) -> dict:
        """One scenario policy as a Graph ``conditionalAccessPolicy``."""
        directory = self.state.directory

        def user_ids(refs):
            out = []
            for ref in refs:
                if ref == "All":
                    out.append("All")
                else:
                    u = directory.user(ref)
                    out.append(u["id"] if u else ref)
            return out

        sp = p.get("servicePrincipals")
        users = {"includeUsers": ["None"] if sp is not None else user_ids(p["users"]["include"]),
                 "excludeUsers": [] if sp is not None else user_ids(p["users"]["exclude"]),
                 "includeGroups": [], "excludeGroups": [], "includeRoles": [], "excludeRoles": [],
                 "includeGuestsOrExternalUsers": None, "excludeGuestsOrExternalUsers": None}
        client_apps = None
        if sp is not None:
            def sp_ids(refs):
                return ["ServicePrincipalsInMyTenant" if r.lower() == "all" else
                        stable_id("sp", tenant["id"], r.lower()) for r in refs]
            client_apps = {"includeServicePrincipals": sp_ids(sp["include"]),
                           "excludeServicePrincipals": sp_ids(sp["exclude"]), "servicePrincipalFilter": None}
        loc = p.get("locations")
        locations = None
        if loc:
            include = [self._location_id(tenant, "includeRanges", loc["includeRanges"])] \
                if loc.get("includeRanges") else ["All"]
            exclude = [self._location_id(tenant, kind, loc[kind]) for kind in ("trustedRanges", "excludedRanges")
                       if loc.get(kind)]
            locations = {"includeLocations": include, "excludeLocations": exclude}
        created = p.get("createdDateTime", DEFAULT_POLICY_DATE)
        modified = p.get("modifiedDateTime")
        if p["id"] in self.state.policy_modified:
            modified = _ests_time(self.state.policy_modified[p["id"]])
        return {
            "id": p["id"],
            "templateId": p.get("templateId"),
            "displayName": policy_display_name(p),
            "createdDateTime": created,
            "modifiedDateTime": modified,
            "state": _STATE[p["state"]],
            "sessionControls": None,
            "conditions": {
                "userRiskLevels": [], "signInRiskLevels": [], "servicePrincipalRiskLevels": [],
                "clientAppTypes": list(p["clientApps"]),
                "platforms": None, "devices": None, "authenticationFlows": None, "insiderRiskLevels": None,
                "locations": locations,
                "clientApplications": client_apps,
                "applications": {"includeApplications": ["All"], "excludeApplications": [], "includeUserActions": [],
                                 "includeAuthenticationContextClassReferences": [], "applicationFilter": None},
                "users": users,
            },
            "grantControls": {"operator": "OR", "builtInControls": [_BUILT_IN[p["grant"]]],
                              "customAuthenticationFactors": [], "termsOfUse": [], "authenticationStrength": None},
        }

    async def policies(self, request, claims, version):
        denied = self._deny_policy(request, claims)
        if denied is not None:
            return denied
        tenant = self._tenant(claims)
        value = [self.policy_record(p, tenant) for p in tenant["conditionalAccess"]] if tenant else []
        return json_response({"@odata.context": f"{GRAPH}/{version}/$metadata#identity/conditionalAccess/policies",
                              "value": value}, headers=self._ids(request))

    async def policy(self, request, claims, version, item):
        denied = self._deny_policy(request, claims)
        if denied is not None:
            return denied
        tenant = self._tenant(claims)
        for p in (tenant["conditionalAccess"] if tenant else []):
            if p["id"].lower() == item.lower():
                body = {"@odata.context": f"{GRAPH}/{version}/$metadata#identity/conditionalAccess/policies/$entity"}
                body.update(self.policy_record(p, tenant))
                return json_response(body, headers=self._ids(request))
        return self._error(request, 404, "ResourceNotFound", f"Resource not found for the segment '{item}'.")

    async def named_locations(self, request, claims, version):
        denied = self._deny_policy(request, claims)
        if denied is not None:
            return denied
        tenant = self._tenant(claims)
        return json_response({"@odata.context": f"{GRAPH}/{version}/$metadata#identity/conditionalAccess/namedLocations",
                              "value": self.named_location_list(tenant) if tenant else []},
                             headers=self._ids(request))

    async def named_location(self, request, claims, version, item):
        denied = self._deny_policy(request, claims)
        if denied is not None:
            return denied
        tenant = self._tenant(claims)
        for loc in (self.named_location_list(tenant) if tenant else []):
            if loc["id"] == item.lower():
                body = {"@odata.context": f"{GRAPH}/{version}/$metadata#identity/conditionalAccess/namedLocations/$entity"}
                body.update(loc)
                return json_response(body, headers=self._ids(request))
        return self._error(request, 404, "ResourceNotFound", f"Resource not found for the segment '{item}'.")

    # ------------------------------------------------------------------ security defaults

    async def security_defaults(self, request, claims, version):
        if not SECURITY_DEFAULTS_READ & self._granted(claims):
            return self._error(request, 403, "Authorization_RequestDenied",
                               "Insufficient privileges to complete the operation.")
        tenant = self._tenant(claims)
        return json_response({
            "@odata.context": f"{GRAPH}/{version}/$metadata#policies/identitySecurityDefaultsEnforcementPolicy",
            "id": SECURITY_DEFAULTS_ID, "displayName": "Security Defaults", "description": SECURITY_DEFAULTS_DESCRIPTION,
            "isEnabled": bool(tenant and tenant["securityDefaults"])}, headers=self._ids(request))
