"""Scenario files: loading, JSON-Schema validation, defaults, merge-patch and the lookup index.

A scenario is plain data (YAML or JSON) describing tenants, users, conditional-access policies,
apps, vaults, the network and faults. Every answer of the simulator is derived from it at request
time, so changing the scenario (``/_sim`` control API) changes the outcome of the next sign-in.
"""
from __future__ import annotations

import copy
import functools
import ipaddress
import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).with_name("scenario.schema.json")
SCENARIOS_DIR = Path(__file__).with_name("scenarios")
DEMO_SCENARIO = SCENARIOS_DIR / "demo.yaml"

#: Directory role template ids (the same in every tenant; Graph ``roleTemplateId``).
ROLE_TEMPLATE_IDS = {
    "Global Administrator": "62e90394-69f5-4237-9190-012177145e10",
    "SharePoint Administrator": "f28a1f50-f6e7-4571-818b-6a12f2af6b6c",
    "Global Reader": "f2ef992c-3afb-46b9-b7cf-a126ee74c451",
    "Exchange Administrator": "29232cdf-9323-42fd-ade2-1d097af3e4de",
    "User Administrator": "fe930be7-5e62-47db-91af-98c3a49a38b1",
    "Teams Administrator": "69091246-20e8-4a56-aa4d-066075b2a7a8",
}
ADMIN_ROLES = frozenset(ROLE_TEMPLATE_IDS)
SPO_ADMIN_ROLES = frozenset({"Global Administrator", "SharePoint Administrator"})

_NS = uuid.UUID("6f1d2c1e-54d3-4b8e-9a55-6d3e8f0c1a77")

#: Microsoft-managed Conditional Access policies carry this prefix in their display name (Learn,
#: "Microsoft-managed Conditional Access policies": "Microsoft-managed policy names start with
#: Microsoft-managed"; captured Graph exports show "Microsoft-managed: Multifactor authentication ...").
MICROSOFT_MANAGED_PREFIX = "Microsoft-managed: "
#: Licences that include Entra ID P1 (sign-in logs through Graph need one of them).
PREMIUM_LICENSES = frozenset({"aadPremiumP1", "aadPremiumP2"})
#: createdDateTime/modifiedDateTime of a policy the scenario gives no date (a fixed, stable instant).
DEFAULT_POLICY_DATE = "2024-01-15T09:00:00Z"


class ScenarioError(ValueError):
    """A scenario is invalid; the message names the file (if any) and the offending field."""


@functools.lru_cache(maxsize=4096)
def stable_id(*parts: str) -> str:
    """A deterministic GUID for objects the scenario does not give an id to."""
    return str(uuid.uuid5(_NS, "/".join(parts)))


def policy_display_name(policy: dict) -> str:
    """The policy's display name as Entra shows it: a Microsoft-managed policy's name starts with
    ``Microsoft-managed: `` (added when the scenario's ``name`` lacks it)."""
    name = policy["name"]
    if policy.get("microsoftManaged") and not name.startswith(MICROSOFT_MANAGED_PREFIX):
        return MICROSOFT_MANAGED_PREFIX + name
    return name


def has_premium(tenant: dict) -> bool:
    """Whether the tenant holds an Entra ID P1 (or P2) licence (scenario ``licenses``)."""
    return bool(PREMIUM_LICENSES.intersection(tenant.get("licenses", [])))


# --------------------------------------------------------------------------- validation

_format_checker = jsonschema.FormatChecker()


@_format_checker.checks("cidr", raises=ValueError)
def _is_cidr(value: object) -> bool:
    if isinstance(value, str):
        ipaddress.ip_network(value, strict=False)
    return True


@_format_checker.checks("ipv4-or-ipv6", raises=ValueError)
def _is_ip(value: object) -> bool:
    if isinstance(value, str):
        ipaddress.ip_address(value)
    return True


_SCHEMA = json.loads(SCHEMA_PATH.read_text())
_VALIDATOR = jsonschema.Draft202012Validator(_SCHEMA, format_checker=_format_checker)
GUID = re.compile(_SCHEMA["$defs"]["guid"]["pattern"])  # a tenant id, as the schema spells it


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _schema_errors(validator: jsonschema.protocols.Validator, data: Any, prefix: Iterable[Any] = ()):
    errors = sorted(validator.iter_errors(data), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    for err in errors:
        # A oneOf/anyOf failure is clearer through its deepest cause.
        best = jsonschema.exceptions.best_match([err]) if err.context else err
        yield f"{_path([*prefix, *best.absolute_path])}: {best.message}"


def validate_fragment(definition: str, data: Any, *, where: str = "") -> None:
    """Validate ``data`` against ``#/$defs/<definition>`` (used by the control API for faults)."""
    sub = {"$ref": f"#/$defs/{definition}", "$defs": _SCHEMA["$defs"]}
    validator = jsonschema.Draft202012Validator(sub, format_checker=_format_checker)
    problems = list(_schema_errors(validator, data, [where] if where else []))
    if problems:
        raise ScenarioError("; ".join(problems[:5]))


def _semantic_errors(sc: dict) -> list[str]:
    errs: list[str] = []
    seen_ids: dict[str, str] = {}
    seen_domains: dict[str, str] = {}
    seen_sp: dict[str, str] = {}
    seen_upns: dict[str, str] = {}
    seen_tenant_apps: dict[str, str] = {}
    for ti, t in enumerate(sc.get("tenants", [])):
        here = f"tenants[{ti}]"
        tid = t["id"].lower()
        if tid in seen_ids:
            errs.append(f"{here}.id: duplicate tenant id {t['id']} (also {seen_ids[tid]})")
        seen_ids[tid] = here
        domains = {d.lower() for d in t["domains"]}
        for di, d in enumerate(t["domains"]):
            if d.lower() in seen_domains:
                errs.append(f"{here}.domains[{di}]: domain {d} already belongs to {seen_domains[d.lower()]}")
            seen_domains[d.lower()] = here
        sp = t.get("sharepoint")
        if sp:
            hosts = [f"{sp['name']}.sharepoint.com", f"{sp['name']}-admin.sharepoint.com"]
            hosts += [u.split("//", 1)[1].rstrip("/") for u in sp.get("adminCenterUrls", [])]
            for h in hosts:
                if h in seen_sp and seen_sp[h] != here:
                    errs.append(f"{here}.sharepoint: host {h} already belongs to {seen_sp[h]}")
                seen_sp[h] = here
        upns_here = set()
        for ui, u in enumerate(t.get("users", [])):
            upn = u["upn"].lower()
            if upn.split("@", 1)[1] not in domains:
                errs.append(f"{here}.users[{ui}].upn: {u['upn']} is not in a domain of this tenant "
                            f"({', '.join(sorted(domains))})")
            if upn in seen_upns:
                errs.append(f"{here}.users[{ui}].upn: duplicate user {u['upn']} (also {seen_upns[upn]})")
            seen_upns[upn] = f"{here}.users[{ui}]"
            upns_here.add(upn)
        for ai, a in enumerate(t.get("apps", [])):
            where = f"{here}.apps[{ai}]"
            aid = a["appId"].lower()
            if aid in seen_tenant_apps:
                errs.append(f"{where}.appId: duplicate app registration {a['appId']} (also {seen_tenant_apps[aid]})")
            seen_tenant_apps[aid] = where
            for ci, c in enumerate(a.get("certificates", [])):
                if "pem" in c:
                    try:
                        load_certificate(c["pem"])
                    except ValueError as exc:
                        errs.append(f"{where}.certificates[{ci}].pem: not an X.509 certificate ({exc})")
        names = set()
        for pi, p in enumerate(t.get("conditionalAccess", [])):
            if "servicePrincipals" in p:
                if (p.get("users") or {}).get("include"):
                    errs.append(f"{here}.conditionalAccess[{pi}]: a policy targets users or servicePrincipals "
                                "(workload identities), not both")
                if p["grant"] != "block":
                    errs.append(f"{here}.conditionalAccess[{pi}].grant: workload-identity policies support "
                                "'block' only")
            if p["name"] in names:
                errs.append(f"{here}.conditionalAccess[{pi}].name: duplicate policy name {p['name']!r}")
            names.add(p["name"])
            if p.get("modifiedDateTime") and p.get("createdDateTime") and \
                    p["modifiedDateTime"] < p["createdDateTime"]:
                errs.append(f"{here}.conditionalAccess[{pi}].modifiedDateTime: before createdDateTime")
            for key in ("include", "exclude"):
                for ri, ref in enumerate(p.get("users", {}).get(key, [])):
                    if ref != "All" and ref.lower() not in upns_here:
                        errs.append(f"{here}.conditionalAccess[{pi}].users.{key}[{ri}]: "
                                    f"{ref!r} is neither 'All' nor a user of this tenant")
    app_ids = set()
    for ai, a in enumerate(sc.get("apps", [])):
        cid = a["clientId"].lower()
        if cid in app_ids:
            errs.append(f"apps[{ai}].clientId: duplicate app {a['clientId']}")
        if cid in seen_tenant_apps:
            errs.append(f"apps[{ai}].clientId: {a['clientId']} is also the app registration {seen_tenant_apps[cid]}")
        app_ids.add(cid)
        home = a.get("homeTenant")
        if home and home.lower() not in seen_ids:
            errs.append(f"apps[{ai}].homeTenant: no tenant with id {home}")
        if not a.get("publicClient") and not a.get("secrets"):
            errs.append(f"apps[{ai}].secrets: a confidential app needs at least one secret")
        if not a.get("multiTenant") and not home:
            errs.append(f"apps[{ai}].homeTenant: required unless multiTenant is true")
    vault_names = set()
    for vi, v in enumerate(sc.get("vaults", [])):
        if v["name"].lower() in vault_names:
            errs.append(f"vaults[{vi}].name: duplicate vault {v['name']}")
        vault_names.add(v["name"].lower())
        if v.get("tenant") and v["tenant"].lower() not in seen_ids:
            errs.append(f"vaults[{vi}].tenant: no tenant with id {v['tenant']}")
        for i, app in enumerate(v.get("allowedApps", [])):
            if app.lower() not in app_ids:
                errs.append(f"vaults[{vi}].allowedApps[{i}]: no app with clientId {app}")
    op = sc.get("operator") or {}
    if op.get("appId") and op["appId"].lower() not in app_ids:
        errs.append(f"operator.appId: no app with clientId {op['appId']}")
    if op.get("publicClientId") and op["publicClientId"].lower() not in app_ids:
        errs.append(f"operator.publicClientId: no app with clientId {op['publicClientId']}")
    if op.get("vault") and op["vault"].lower() not in vault_names:
        errs.append(f"operator.vault: no vault named {op['vault']}")
    return errs


def validate(scenario: Any, *, source: str = "scenario") -> dict:
    """Validate and return a normalised deep copy (defaults filled in). Raises :class:`ScenarioError`."""
    if not isinstance(scenario, dict):
        raise ScenarioError(f"{source}: the scenario must be a mapping, got {type(scenario).__name__}")
    problems = list(_schema_errors(_VALIDATOR, scenario))
    if not problems:
        problems = _semantic_errors(scenario)
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ScenarioError(f"{source}: " + "; ".join(problems[:5]) + more)
    return normalise(scenario)


def normalise(sc: dict) -> dict:
    sc = copy.deepcopy(sc)
    sc.setdefault("version", 1)
    sc.setdefault("network", {}).setdefault("egressIp", "203.0.113.5")
    settings = sc.setdefault("settings", {})
    settings.setdefault("tokenLifetimeSeconds", 3600)
    settings.setdefault("spoCookieLifetimeSeconds", 5 * 24 * 3600)
    settings.setdefault("signInLogDelaySeconds", 0)
    for t in sc.setdefault("tenants", []):
        t.setdefault("name", t["domains"][0].split(".")[0].title())
        la = t.setdefault("legacyAuth", {})
        la.setdefault("idcrl", "enabled")
        la.setdefault("idcrlReEnabled", False)
        la.setdefault("blockLegacyApps", False)
        t.setdefault("securityDefaults", False)
        t.setdefault("licenses", [])
        for u in t.setdefault("users", []):
            u.setdefault("id", stable_id("user", u["upn"].lower()))
            u.setdefault("displayName", u["upn"].split("@")[0].title())
            u.setdefault("password", "Demo-Passw0rd!")
            u.setdefault("appPasswords", [])
            u.setdefault("perUserMfa", "disabled")
            u.setdefault("mfaRegistered", u["perUserMfa"] != "disabled")
            u.setdefault("roles", [])
            u.setdefault("state", "active")
        for a in t.setdefault("apps", []):
            a.setdefault("displayName", f"app {a['appId'][:8]}")
            a.setdefault("enabled", True)
            a.setdefault("consented", False)
            a.setdefault("certificates", [])
            a.setdefault("secrets", [])
            perms = a.setdefault("permissions", {})
            perms.setdefault("graph", [])
            perms.setdefault("sharepoint", [])
        for p in t.setdefault("conditionalAccess", []):
            p.setdefault("id", stable_id("policy", t["id"].lower(), p["name"]))
            p.setdefault("state", "on")
            p.setdefault("microsoftManaged", False)
            if "servicePrincipals" in p:  # a workload-identity policy covers no user
                p["servicePrincipals"].setdefault("include", [])
                p["servicePrincipals"].setdefault("exclude", [])
                p.setdefault("users", {"include": [], "exclude": []})
            p.setdefault("users", {}).setdefault("include", ["All"])
            p["users"].setdefault("exclude", [])
            p.setdefault("clientApps", ["all"])
    for a in sc.setdefault("apps", []):
        a.setdefault("displayName", f"app {a['clientId'][:8]}")
        a.setdefault("publicClient", False)
        a.setdefault("multiTenant", False)
        a.setdefault("secrets", [])
        a.setdefault("roles", [])
    first_tenant = sc["tenants"][0]["id"] if sc["tenants"] else None
    for v in sc.setdefault("vaults", []):
        v.setdefault("tenant", first_tenant)
        v.setdefault("allowedApps", [])
        v.setdefault("softDeleteRetentionDays", 90)
        v.setdefault("secrets", [])
    faults = sc.setdefault("faults", {})
    faults.setdefault("rules", [])
    faults.setdefault("outage", None)
    faults.setdefault("sharepointUserThrottle", None)
    return sc


def load(source: str | Path | dict) -> dict:
    """Load a scenario from a YAML/JSON file path, YAML/JSON text, or a dict; validated."""
    if isinstance(source, dict):
        return validate(source)
    path = Path(source) if not (isinstance(source, str) and "\n" in source) else None
    if path is not None:
        try:
            text = path.read_text()
        except OSError as exc:
            raise ScenarioError(f"{path}: cannot read the scenario file ({exc.strerror})") from None
        name = str(path)
    else:
        text, name = str(source), "scenario"
    return validate(parse_text(text, source=name), source=name)


def parse_text(text: str, *, source: str = "scenario") -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ScenarioError(f"{source}: not valid YAML/JSON{where}: {getattr(exc, 'problem', exc)}") from None


# --------------------------------------------------------------------------- certificates

@functools.lru_cache(maxsize=256)
def load_certificate(text: str):
    """An X.509 certificate from PEM text or base64 DER (what the portal's upload takes, a .cer file).

    :raises ValueError: when it is neither.
    """
    import base64
    import binascii

    from cryptography import x509

    data = text.strip()
    if data.startswith("-----BEGIN"):
        return x509.load_pem_x509_certificate(data.encode("ascii"))
    try:
        der = base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("neither PEM nor base64 DER") from None
    return x509.load_der_x509_certificate(der)


# --------------------------------------------------------------------------- merge patch

def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch (returns a new object)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --------------------------------------------------------------------------- index

@dataclass(frozen=True)
class SpoHost:
    tenant: dict
    is_admin: bool


class Directory:
    """Read-only lookups over one validated scenario (rebuilt whenever the scenario changes).

    ``aliases`` (lower-case alias id -> lower-case tenant id, owned by :class:`SimState` and shared
    by reference) are extra ids a tenant answers to, like one more verified domain: the tenant they
    resolve to is the scenario tenant itself, so every answer still carries its own id.
    """

    def __init__(self, scenario: dict, aliases: dict[str, str] | None = None):
        self.scenario = scenario
        self.aliases = {} if aliases is None else aliases
        self.tenants_by_key: dict[str, dict] = {}
        self.tenant_of_user: dict[str, dict] = {}
        self.users: dict[str, dict] = {}
        self.spo_hosts: dict[str, SpoHost] = {}
        for t in scenario["tenants"]:
            self.tenants_by_key[t["id"].lower()] = t
            for d in t["domains"]:
                self.tenants_by_key[d.lower()] = t
            for u in t["users"]:
                self.users[u["upn"].lower()] = u
                self.tenant_of_user[u["upn"].lower()] = t
            sp = t.get("sharepoint")
            if sp:
                self.spo_hosts[f"{sp['name']}.sharepoint.com"] = SpoHost(t, False)
                self.spo_hosts[f"{sp['name']}-admin.sharepoint.com"] = SpoHost(t, True)
                for url in sp.get("adminCenterUrls", []):
                    self.spo_hosts[url.split("//", 1)[1].rstrip("/").lower()] = SpoHost(t, True)
        self.apps = {a["clientId"].lower(): a for a in scenario["apps"]}
        #: (tenant id, app id) -> app registration of that tenant (lower case keys)
        self.tenant_apps: dict[tuple[str, str], dict] = {
            (t["id"].lower(), a["appId"].lower()): a for t in scenario["tenants"] for a in t["apps"]}
        self.vaults = {v["name"].lower(): v for v in scenario["vaults"]}

    def tenant(self, key: str) -> dict | None:
        key = key.lower()
        found = self.tenants_by_key.get(key)
        if found is None and key in self.aliases:
            found = self.tenants_by_key.get(self.aliases[key])
        return found

    def tenant_for_domain(self, upn: str) -> dict | None:
        return self.tenants_by_key.get(upn.rpartition("@")[2].lower())

    def user(self, upn: str) -> dict | None:
        return self.users.get(upn.lower())

    def app(self, client_id: str) -> dict | None:
        return self.apps.get(client_id.lower())

    def tenant_app(self, tenant: dict, app_id: str) -> dict | None:
        """The app registration ``app_id`` of ``tenant`` (scenario ``tenants[].apps``), or None."""
        return self.tenant_apps.get((tenant["id"].lower(), app_id.lower()))

    def vault(self, name: str) -> dict | None:
        return self.vaults.get(name.lower())

    def spo_host(self, host: str) -> SpoHost | None:
        return self.spo_hosts.get(host.lower())

    def user_by_id(self, oid: str) -> dict | None:
        return next((u for u in self.users.values() if u["id"] == oid), None)

    def operator(self) -> dict:
        """The product's own identity: app, vault and the public client used for ROPC."""
        op = self.scenario.get("operator") or {}
        confidential = [a for a in self.scenario["apps"] if not a["publicClient"]]
        public = [a for a in self.scenario["apps"] if a["publicClient"]]
        app = self.app(op["appId"]) if op.get("appId") else (confidential[0] if confidential else None)
        vault = self.vault(op["vault"]) if op.get("vault") else (
            next((v for v in self.scenario["vaults"] if app and app["clientId"] in v["allowedApps"]), None)
            or (self.scenario["vaults"][0] if self.scenario["vaults"] else None))
        pub = self.app(op["publicClientId"]) if op.get("publicClientId") else (public[0] if public else None)
        return {"app": app, "vault": vault, "publicClient": pub}
