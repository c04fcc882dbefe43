"""How Entra ID decides a user sign-in, from scenario state only (no canned answers per user).

The same evaluation serves the modern password grant (ROPC, client app "mobileAppsAndDesktopClients")
and the legacy SharePoint security token service (client app "other"). Order, as Entra applies it:
user exists → account state (disabled, locked) → credential (password; app passwords only on the
legacy path for users with per-user MFA) → password expiry → security defaults → Conditional Access
(block, then device grants, then MFA) → per-user MFA.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from .scenario import ADMIN_ROLES, Directory, policy_display_name

MODERN = "mobileAppsAndDesktopClients"
LEGACY = "other"


@dataclass
class Decision:
    code: int | None = None
    params: dict = field(default_factory=dict)
    app_password: bool = False
    policies: list[dict] = field(default_factory=list)
    claims: dict | None = None

    @property
    def ok(self) -> bool:
        return self.code is None


def _in_ranges(ip: ipaddress._BaseAddress, ranges: list[str]) -> bool:
    return any(ip in ipaddress.ip_network(r, strict=False) for r in ranges)


def policy_applies(policy: dict, upn: str, client_app: str, client_ip: str) -> bool:
    users = policy["users"]
    upn = upn.lower()
    included = any(ref == "All" or ref.lower() == upn for ref in users["include"])
    if not included or any(ref == "All" or ref.lower() == upn for ref in users["exclude"]):
        return False
    apps = policy["clientApps"]
    if "all" not in apps and client_app not in apps:
        return False
    loc = policy.get("locations")
    if loc:
        ip = ipaddress.ip_address(client_ip)
        if loc.get("includeRanges") and not _in_ranges(ip, loc["includeRanges"]):
            return False
        if _in_ranges(ip, loc.get("trustedRanges", []) + loc.get("excludedRanges", [])):
            return False
    return True


def _logged(policy: dict, result: str) -> dict:
    """What the sign-in log keeps of one evaluated policy (its name as it was at sign-in time)."""
    return {"id": policy["id"], "name": policy["name"], "displayName": policy_display_name(policy),
            "state": policy["state"], "grant": policy["grant"],
            "microsoftManaged": policy.get("microsoftManaged", False), "result": result}


_GRANT_ORDER = {"block": 0, "compliantDevice": 1, "domainJoined": 2, "mfa": 3}
_GRANT_CODE = {"block": 53003, "compliantDevice": 53000, "domainJoined": 53001}


def evaluate(directory: Directory, tenant: dict, upn: str, password: str, *, client_app: str,
             client_ip: str, resource_app_id: str) -> Decision:
    """Decide a username/password sign-in to ``tenant`` (see the module docstring for the order)."""
    user = directory.user(upn)
    if user is None or directory.tenant_of_user[upn.lower()] is not tenant:
        return Decision(50034, {"tenant": tenant["id"]})
    if user["state"] == "disabled":
        return Decision(50057)
    if user["state"] == "locked":
        return Decision(50053)

    app_password = False
    if password != user["password"]:
        mfa_user = user["perUserMfa"] != "disabled"
        if client_app == LEGACY and mfa_user and password in user["appPasswords"]:
            app_password = True
        else:
            # App passwords are not passwords to the modern password grant: invalid credentials.
            return Decision(50126)
    if user["state"] == "passwordExpired":
        return Decision(50055, app_password=app_password)

    decision = Decision(app_password=app_password)
    needs_mfa = False
    if tenant["securityDefaults"]:
        if client_app == LEGACY:
            decision.code = 530035
            return decision
        needs_mfa = bool(ADMIN_ROLES.intersection(user["roles"]))

    failing: list[dict] = []
    for policy in tenant["conditionalAccess"]:
        if "servicePrincipals" in policy:  # a workload-identity policy: evaluated for app sign-ins only
            continue
        if policy["state"] == "off":
            # The sign-in log lists a disabled policy too, as notEnabled (Graph's signIn examples).
            decision.policies.append(_logged(policy, "notEnabled"))
            continue
        applies = policy_applies(policy, upn, client_app, client_ip)
        # No grant control can be satisfied by a non-interactive password sign-in.
        result = "notApplied"
        if applies and policy["state"] == "reportOnly":
            result = "reportOnlyFailure"
        elif applies:
            result = "failure"
            failing.append(policy)
        decision.policies.append(_logged(policy, result))
    failing.sort(key=lambda p: _GRANT_ORDER[p["grant"]])
    if failing and failing[0]["grant"] in _GRANT_CODE:
        grant = failing[0]["grant"]
        decision.code = _GRANT_CODE[grant]
        ids = [p["id"] for p in failing if p["grant"] == grant]
        decision.claims = {"access_token": {"capolids": {"essential": True, "values": ids}}}
        return decision
    if failing:  # the remaining failing grants require MFA: a claims challenge names those policies
        needs_mfa = True
        decision.claims = {"access_token": {"capolids": {"essential": True,
                                                         "values": [p["id"] for p in failing]}}}

    if not app_password:
        per_user = user["perUserMfa"]
        if per_user == "enforced" or (per_user == "enabled" and (user["mfaRegistered"] or client_app != LEGACY)):
            needs_mfa = True
    if needs_mfa:
        decision.code = 50076 if user["mfaRegistered"] else 50079
        decision.params = {"resource": resource_app_id}
    return decision
