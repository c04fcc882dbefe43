"""The runtime control API under ``/_sim/`` (any host name or the bare IP) and its Python client.

Routes (JSON in and out; errors are ``{"error": "<message naming the field>"}`` with 400/404):

=======================================  ==========================================================
``GET    /_sim/health``                  ``{"status": "ok", "endpoint", "caPath"}``
``GET    /_sim/scenario``                the current (normalised) scenario
``PUT    /_sim/scenario``                load/replace (JSON or YAML body); vaults, faults re-seeded
``PATCH  /_sim/scenario``                JSON merge patch (RFC 7396) of the whole scenario
``POST   /_sim/reset``                   back to the start scenario; faults, counters, sign-ins cleared
``PATCH  /_sim/tenants/{id|domain}``     merge patch of one tenant
``PATCH  /_sim/users/{upn}``             merge patch of one user
``POST   /_sim/tenants/{t}/users``       add a user
``DELETE /_sim/users/{upn}``             remove a user
``PATCH  /_sim/tenants/{t}/policies/{name}``  merge patch of one Conditional Access policy
``POST   /_sim/tenants/{t}/policies``    add a policy; ``DELETE .../policies/{name}`` removes it
``PATCH  /_sim/network``                 e.g. ``{"egressIp": "198.51.100.7"}``
``GET|PUT|DELETE /_sim/faults``          all faults (``rules``, ``outage``, ``sharepointUserThrottle``)
``POST   /_sim/faults/rules``            add one rule
``PUT|DELETE /_sim/faults/outage``       ``{"mode": "reset"|"503"|"refused", "seconds": n}``
``PUT|DELETE /_sim/faults/sharepoint-throttle``  ``{"limit", "windowSeconds", "retryAfter"?, "users"?}``
``POST   /_sim/faults/hostile``          add a hostile-body rule ``{"endpoint", "kind": "billionLaughs"|"huge"|``
                                         ``"invalidUtf8"|"trickle", "status"?, "count"?, "windowSeconds"?, ...}``
``DELETE /_sim/faults/hostile``          remove every hostile-body rule (``DELETE /_sim/faults`` too)
``GET|DELETE /_sim/counters``            per-endpoint request counters
``GET|DELETE /_sim/signins[?user=upn]``  the sign-in log
``POST   /_sim/tokens``                  mint a token for tests (``audience``, ``upn``|``appId``, ``expiresIn``)
``GET    /_sim/vaults/{name}``           secret names, version counts, deleted flags (no values)
``POST   /_sim/tenants/{t}/apps``        add an app registration (``{appId, displayName, ...}``)
``GET    /_sim/apps/{appId}``            the app registration, its certificates as thumbprints/validity
``PATCH  /_sim/apps/{appId}``            merge patch (``consented``, ``enabled``, ``permissions``, ...)
``DELETE /_sim/apps/{appId}``            remove the app registration
``POST   /_sim/apps/{appId}/certificates``  register a certificate (``{"pem": ...}`` or ``{"generated": name}``)
``DELETE /_sim/apps/{appId}/certificates/{thumbprint}``  unregister it (SHA-1 or SHA-256 hex, or the name)
``GET    /_sim/certificates/{name}``     a generated certificate: thumbprints, validity, public PEM, PFX path
``GET    /_sim/tenant-aliases``          ``{"<alias id>": "<tenant id>"}``
``PUT    /_sim/tenant-aliases/{id}``     ``{"tenant": "<id|domain>"}``: ``id`` addresses that tenant too
``DELETE /_sim/tenant-aliases/{id}``     remove the alias (404 when there is none)
=======================================  ==========================================================

Tenant aliases (test isolation): ``PUT /_sim/tenant-aliases/{id}`` makes a fresh GUID ``id`` (one no
tenant has) a second id of a scenario tenant, so a test can use its own tenant id in the product's
paths (Table partition, Key Vault secret names) while sign-in through the authority
``https://login.microsoftonline.com/{id}`` reaches that tenant's users, policies and SharePoint hosts.
The alias resolves wherever a tenant id or domain does (discovery, JWKS, token endpoint, this control
API); answers are the tenant's own, exactly as when it is addressed by one of its domains (discovery
and tokens carry its real id). Nothing else on the wire changes, and an id that is neither a tenant
nor an alias is still AADSTS90002. Aliases are not part of the scenario (``GET /_sim/scenario`` does
not show them); they survive scenario changes and are cleared by ``POST /_sim/reset``.
Client: :meth:`SimulatorControl.add_tenant_alias`, :meth:`~SimulatorControl.remove_tenant_alias`,
:meth:`~SimulatorControl.tenant_aliases`.
"""
from __future__ import annotations

import copy
import json
import time
import uuid
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

from aiohttp import web

from . import entra as entra_mod
from . import scenario as scenario_mod
from .scenario import ROLE_TEMPLATE_IDS, ScenarioError, merge_patch, stable_id
from .tokens import b64url
from .webutil import Routes, json_response


def _err(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status)


class ControlApi:
    def __init__(self, state, *, info: Callable[[], dict], refuse: Callable[[float], Any]):
        self.state = state
        self._info = info
        self._refuse = refuse
        #: where generated app certificates are written (``<name>.pfx``/``.cer``): the CA's directory
        self.state_dir = Path(info()["caPath"]).parent
        self._written: set[str] = set()
        self._write_generated()
        r = Routes()
        r.add("GET", r"/_sim/health", self.health)
        r.add("GET", r"/_sim/scenario", self.get_scenario)
        r.add("PUT", r"/_sim/scenario", self.put_scenario)
        r.add("PATCH", r"/_sim/scenario", self.patch_scenario)
        r.add("POST", r"/_sim/reset", self.reset)
        r.add("PATCH", r"/_sim/tenants/(?P<tenant>[^/]+)", self.patch_tenant)
        r.add("POST", r"/_sim/tenants/(?P<tenant>[^/]+)/users", self.add_user)
        r.add("PATCH", r"/_sim/users/(?P<upn>[^/]+)", self.patch_user)
        r.add("DELETE", r"/_sim/users/(?P<upn>[^/]+)", self.delete_user)
        r.add("POST", r"/_sim/tenants/(?P<tenant>[^/]+)/policies", self.add_policy)
        r.add("PATCH", r"/_sim/tenants/(?P<tenant>[^/]+)/policies/(?P<name>[^/]+)", self.patch_policy)
        r.add("DELETE", r"/_sim/tenants/(?P<tenant>[^/]+)/policies/(?P<name>[^/]+)", self.delete_policy)
        r.add("PATCH", r"/_sim/network", self.patch_network)
        r.add("GET", r"/_sim/faults", self.get_faults)
        r.add("PUT", r"/_sim/faults", self.put_faults)
        r.add("DELETE", r"/_sim/faults", self.clear_faults)
        r.add("POST", r"/_sim/faults/rules", self.add_rule)
        r.add("PUT", r"/_sim/faults/outage", self.put_outage)
        r.add("DELETE", r"/_sim/faults/outage", self.clear_outage)
        r.add("PUT", r"/_sim/faults/sharepoint-throttle", self.put_throttle)
        r.add("DELETE", r"/_sim/faults/sharepoint-throttle", self.clear_throttle)
        r.add("POST", r"/_sim/faults/hostile", self.add_hostile)
        r.add("DELETE", r"/_sim/faults/hostile", self.clear_hostile)
        r.add("GET", r"/_sim/counters", self.get_counters)
        r.add("DELETE", r"/_sim/counters", self.clear_counters)
        r.add("GET", r"/_sim/signins", self.get_signins)
        r.add("DELETE", r"/_sim/signins", self.clear_signins)
        r.add("POST", r"/_sim/tokens", self.mint_token)
        r.add("GET", r"/_sim/vaults/(?P<name>[^/]+)", self.get_vault)
        r.add("POST", r"/_sim/tenants/(?P<tenant>[^/]+)/apps", self.add_app)
        r.add("GET", r"/_sim/apps/(?P<app_id>[^/]+)", self.get_app)
        r.add("PATCH", r"/_sim/apps/(?P<app_id>[^/]+)", self.patch_app)
        r.add("DELETE", r"/_sim/apps/(?P<app_id>[^/]+)", self.delete_app)
        r.add("POST", r"/_sim/apps/(?P<app_id>[^/]+)/certificates", self.add_app_certificate)
        r.add("DELETE", r"/_sim/apps/(?P<app_id>[^/]+)/certificates/(?P<ref>[^/]+)", self.delete_app_certificate)
        r.add("GET", r"/_sim/certificates/(?P<name>[^/]+)", self.get_certificate)
        r.add("GET", r"/_sim/tenant-aliases", self.get_tenant_aliases)
        r.add("PUT", r"/_sim/tenant-aliases/(?P<alias>[^/]+)", self.put_tenant_alias)
        r.add("DELETE", r"/_sim/tenant-aliases/(?P<alias>[^/]+)", self.delete_tenant_alias)
        self.routes = r

    async def handle(self, request: web.Request) -> web.Response:
        handler, groups, known = self.routes.match(request.method, request.path.rstrip("/"))
        if handler is None:
            return _err(405 if known else 404, f"no control route {request.method} {request.path}")
        try:
            return await handler(request, **groups)
        except ScenarioError as exc:
            return _err(400, str(exc))

    @staticmethod
    async def _body(request: web.Request) -> Any:
        text = await request.text()
        if not text.strip():
            return None
        return scenario_mod.parse_text(text, source="request body")

    # ------------------------------------------------------------------ scenario

    async def health(self, request):
        return json_response(dict(status="ok", **self._info()))

    async def get_scenario(self, request):
        return json_response(self.state.scenario)

    async def put_scenario(self, request):
        self.state.load(scenario_mod.validate(await self._body(request), source="scenario"))
        self._write_generated()
        return json_response({"status": "loaded"})

    async def patch_scenario(self, request):
        return self._commit(merge_patch(self.state.scenario, await self._body(request)))

    async def reset(self, request):
        self.state.reset()
        return json_response({"status": "reset"})

    def _commit(self, candidate: dict) -> web.Response:
        self.state.update(scenario_mod.validate(candidate, source="scenario"))
        self._write_generated()
        return json_response({"status": "updated"})

    def _write_generated(self) -> None:
        """Write every generated app certificate the scenario names that is not on disk yet."""
        store = entra_mod.generated_certificates(self.state)
        for name in entra_mod.generated_names(self.state.scenario):
            if name not in self._written:
                store.write(name, self.state_dir)
                self._written.add(name)

    def _find_tenant(self, sc: dict, key: str) -> dict | None:
        key = key.lower()
        key = self.state.tenant_aliases.get(key, key)
        return next((t for t in sc["tenants"] if t["id"].lower() == key or key in map(str.lower, t["domains"])),
                    None)

    async def patch_tenant(self, request, tenant):
        sc = copy.deepcopy(self.state.scenario)
        t = self._find_tenant(sc, tenant)
        if t is None:
            return _err(404, f"no tenant {tenant}")
        sc["tenants"][sc["tenants"].index(t)] = merge_patch(t, await self._body(request))
        return self._commit(sc)

    def _find_user(self, sc: dict, upn: str) -> tuple[dict, int] | None:
        for t in sc["tenants"]:
            for i, u in enumerate(t["users"]):
                if u["upn"].lower() == upn.lower():
                    return t, i
        return None

    async def patch_user(self, request, upn):
        sc = copy.deepcopy(self.state.scenario)
        found = self._find_user(sc, upn)
        if found is None:
            return _err(404, f"no user {upn}")
        t, i = found
        t["users"][i] = merge_patch(t["users"][i], await self._body(request))
        return self._commit(sc)

    async def add_user(self, request, tenant):
        sc = copy.deepcopy(self.state.scenario)
        t = self._find_tenant(sc, tenant)
        if t is None:
            return _err(404, f"no tenant {tenant}")
        t["users"].append(await self._body(request))
        return self._commit(sc)

    async def delete_user(self, request, upn):
        sc = copy.deepcopy(self.state.scenario)
        found = self._find_user(sc, upn)
        if found is None:
            return _err(404, f"no user {upn}")
        t, i = found
        del t["users"][i]
        for p in t["conditionalAccess"]:
            for key in ("include", "exclude"):
                p["users"][key] = [u for u in p["users"][key] if u.lower() != upn.lower()]
        return self._commit(sc)

    def _find_policy(self, sc: dict, tenant: str, name: str):
        t = self._find_tenant(sc, tenant)
        if t is None:
            return None, None
        return t, next((i for i, p in enumerate(t["conditionalAccess"]) if p["name"] == name), None)

    async def add_policy(self, request, tenant):
        sc = copy.deepcopy(self.state.scenario)
        t = self._find_tenant(sc, tenant)
        if t is None:
            return _err(404, f"no tenant {tenant}")
        t["conditionalAccess"].append(await self._body(request))
        return self._commit(sc)

    async def patch_policy(self, request, tenant, name):
        sc = copy.deepcopy(self.state.scenario)
        t, i = self._find_policy(sc, tenant, name)
        if i is None:
            return _err(404, f"no policy {name!r} in tenant {tenant}")
        t["conditionalAccess"][i] = merge_patch(t["conditionalAccess"][i], await self._body(request))
        return self._commit(sc)

    async def delete_policy(self, request, tenant, name):
        sc = copy.deepcopy(self.state.scenario)
        t, i = self._find_policy(sc, tenant, name)
        if i is None:
            return _err(404, f"no policy {name!r} in tenant {tenant}")
        del t["conditionalAccess"][i]
        return self._commit(sc)

    async def patch_network(self, request):
        sc = copy.deepcopy(self.state.scenario)
        sc["network"] = merge_patch(sc["network"], await self._body(request))
        return self._commit(sc)

    # ------------------------------------------------------------------ app registrations

    def _find_app(self, sc: dict, app_id: str) -> tuple[dict, int] | None:
        for t in sc["tenants"]:
            for i, a in enumerate(t["apps"]):
                if a["appId"].lower() == app_id.lower():
                    return t, i
        return None

    def _app_view(self, tenant: dict, app: dict) -> dict:
        creds = entra_mod.key_credentials(self.state, app)
        return dict(copy.deepcopy(app), tenantId=tenant["id"],
                    keyCredentials=[dict(c.summary(), **({"generated": ref["generated"]} if "generated" in ref else {}))
                                    for c, ref in zip(creds, app["certificates"])])

    async def add_app(self, request, tenant):
        sc = copy.deepcopy(self.state.scenario)
        t = self._find_tenant(sc, tenant)
        if t is None:
            return _err(404, f"no tenant {tenant}")
        t["apps"].append(await self._body(request))
        return self._commit(sc)

    async def get_app(self, request, app_id):
        found = self._find_app(self.state.scenario, app_id)
        if found is None:
            return _err(404, f"no app registration {app_id}")
        t, i = found
        return json_response(self._app_view(t, t["apps"][i]))

    async def patch_app(self, request, app_id):
        sc = copy.deepcopy(self.state.scenario)
        found = self._find_app(sc, app_id)
        if found is None:
            return _err(404, f"no app registration {app_id}")
        t, i = found
        t["apps"][i] = merge_patch(t["apps"][i], await self._body(request))
        return self._commit(sc)

    async def delete_app(self, request, app_id):
        sc = copy.deepcopy(self.state.scenario)
        found = self._find_app(sc, app_id)
        if found is None:
            return _err(404, f"no app registration {app_id}")
        t, i = found
        del t["apps"][i]
        return self._commit(sc)

    async def add_app_certificate(self, request, app_id):
        sc = copy.deepcopy(self.state.scenario)
        found = self._find_app(sc, app_id)
        if found is None:
            return _err(404, f"no app registration {app_id}")
        t, i = found
        t["apps"][i]["certificates"].append(await self._body(request))
        return self._commit(sc)

    async def delete_app_certificate(self, request, app_id, ref):
        sc = copy.deepcopy(self.state.scenario)
        found = self._find_app(sc, app_id)
        if found is None:
            return _err(404, f"no app registration {app_id}")
        t, i = found
        app = t["apps"][i]
        want = ref.replace(":", "").upper()
        creds = entra_mod.key_credentials(self.state, app)
        keep = [c for c, cred in zip(app["certificates"], creds)
                if want not in (cred.sha1, cred.sha256) and c.get("generated", "").upper() != want]
        if len(keep) == len(app["certificates"]):
            return _err(404, f"no certificate {ref} on app registration {app_id}")
        app["certificates"] = keep
        return self._commit(sc)

    async def get_certificate(self, request, name):
        if name not in entra_mod.generated_names(self.state.scenario):
            return _err(404, f"no generated certificate {name} in the scenario")
        cred = entra_mod.generated_certificates(self.state).credential(name)
        return json_response(dict(cred.summary(), name=name, pem=cred.pem,
                                  pfxPath=str(self.state_dir / f"{name}.pfx"),
                                  cerPath=str(self.state_dir / f"{name}.cer")))

    # ------------------------------------------------------------------ tenant aliases

    async def get_tenant_aliases(self, request):
        return json_response(dict(self.state.tenant_aliases))

    async def put_tenant_alias(self, request, alias):
        body = await self._body(request)
        if not isinstance(body, dict) or not isinstance(body.get("tenant"), str):
            raise ScenarioError("tenant: required (the id or a domain of a scenario tenant)")
        try:
            tenant_id = self.state.add_tenant_alias(alias, body["tenant"])
        except LookupError as exc:
            return _err(404, str(exc.args[0]))
        return json_response({"id": alias.lower(), "tenant": tenant_id})

    async def delete_tenant_alias(self, request, alias):
        try:
            self.state.remove_tenant_alias(alias)
        except LookupError as exc:
            return _err(404, str(exc.args[0]))
        return json_response({"status": "removed"})

    # ------------------------------------------------------------------ faults

    async def get_faults(self, request):
        return json_response(self.state.faults.snapshot())

    async def put_faults(self, request):
        faults = await self._body(request) or {}
        scenario_mod.validate_fragment("faults", faults, where="faults")
        self._check_outage(faults.get("outage"))
        self.state.faults.configure(faults)
        if (faults.get("outage") or {}).get("mode") == "refused":
            self._refuse(faults["outage"]["seconds"])
        return json_response(self.state.faults.snapshot())

    async def clear_faults(self, request):
        self.state.faults.configure({})
        return json_response(self.state.faults.snapshot())

    async def add_rule(self, request):
        rule = await self._body(request)
        scenario_mod.validate_fragment("faultRule", rule, where="rule")
        self.state.faults.add_rule(rule)
        return json_response(self.state.faults.snapshot())

    async def add_hostile(self, request):
        try:
            self.state.faults.add_hostile(await self._body(request))
        except ValueError as exc:
            return _err(400, str(exc))
        return json_response(self.state.faults.snapshot())

    async def clear_hostile(self, request):
        self.state.faults.clear_hostile()
        return json_response(self.state.faults.snapshot())

    @staticmethod
    def _check_outage(outage: dict | None) -> None:
        if outage and outage["mode"] == "refused" and "seconds" not in outage:
            raise ScenarioError("outage.seconds: required for mode 'refused' (the control API is unreachable "
                                "while the port is closed)")

    async def put_outage(self, request):
        outage = await self._body(request)
        scenario_mod.validate_fragment("faults", {"outage": outage}, where="faults")
        self._check_outage(outage)
        if outage["mode"] == "refused":
            self._refuse(outage["seconds"])
        else:
            self.state.faults.set_outage(outage)
        return json_response(self.state.faults.snapshot())

    async def clear_outage(self, request):
        self.state.faults.set_outage(None)
        return json_response(self.state.faults.snapshot())

    async def put_throttle(self, request):
        throttle = await self._body(request)
        scenario_mod.validate_fragment("faults", {"sharepointUserThrottle": throttle}, where="faults")
        self.state.faults.set_user_throttle(throttle)
        return json_response(self.state.faults.snapshot())

    async def clear_throttle(self, request):
        self.state.faults.set_user_throttle(None)
        return json_response(self.state.faults.snapshot())

    # ------------------------------------------------------------------ observation

    async def get_counters(self, request):
        return json_response(self.state.counters.snapshot())

    async def clear_counters(self, request):
        self.state.counters.clear()
        return json_response({})

    async def get_signins(self, request):
        return json_response(self.state.signin_log(request.query.get("user")))

    async def clear_signins(self, request):
        self.state.signins.clear()
        return json_response([])

    async def get_vault(self, request, name):
        if self.state.directory.vault(name) is None:
            return _err(404, f"no vault {name}")
        return json_response(self.state.vaults.summary(name))

    async def mint_token(self, request):
        spec = await self._body(request) or {}
        audience = spec.get("audience")
        if not audience:
            raise ScenarioError("audience: required")
        now = int(time.time())
        exp = now + int(spec.get("expiresIn", 3600))
        directory = self.state.directory
        if spec.get("upn"):
            user = directory.user(spec["upn"])
            if user is None:
                return _err(404, f"no user {spec['upn']}")
            tid = directory.tenant_of_user[user["upn"].lower()]["id"]
            claims = {"upn": user["upn"], "unique_name": user["upn"], "oid": user["id"], "idtyp": "user",
                      "name": user["displayName"], "scp": "User.Read",
                      "wids": [ROLE_TEMPLATE_IDS[r] for r in user["roles"]]}
        else:
            app_id = spec.get("appId") or (directory.operator()["app"] or {}).get("clientId")
            tid = spec.get("tenantId") or (directory.app(app_id) or {}).get("homeTenant")
            claims = {"oid": stable_id("sp", str(tid), str(app_id).lower()), "idtyp": "app"}
        claims.update({"aud": audience, "iss": f"https://sts.windows.net/{tid}/", "iat": min(now, exp - 60),
                       "nbf": min(now, exp - 60), "exp": exp, "tid": tid, "ver": "1.0",
                       "appid": spec.get("appId") or spec.get("clientId") or "1950a258-227b-4e31-a9cf-717495945fc2",
                       "uti": b64url(uuid.uuid4().bytes)})
        claims.update(spec.get("claims") or {})
        return json_response({"access_token": self.state.tokens.sign(claims), "claims": claims})


# ============================================================================ client


class SimulatorControlError(RuntimeError):
    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class SimulatorControl:
    """A small client for ``/_sim``. ``endpoint`` is ``host:port``; TLS is verified with ``ca_path``."""

    def __init__(self, endpoint: str, ca_path: str | Path, *, timeout: float = 10.0):
        import requests

        self.base = f"https://{endpoint}/_sim"
        self._session = requests.Session()
        self._session.trust_env = False
        self._session.verify = str(ca_path)
        self._timeout = timeout

    def close(self) -> None:
        self._session.close()

    def _call(self, method: str, path: str, body: Any = None, **params) -> Any:
        data = None if body is None else json.dumps(body)
        resp = self._session.request(method, self.base + path, data=data, params=params or None,
                                     headers={"Content-Type": "application/json"}, timeout=self._timeout)
        payload = resp.json() if resp.content else None
        if resp.status_code >= 400:
            raise SimulatorControlError(resp.status_code, (payload or {}).get("error", resp.text))
        return payload

    # scenario
    def health(self) -> dict:
        return self._call("GET", "/health")

    def scenario(self) -> dict:
        return self._call("GET", "/scenario")

    def load_scenario(self, scenario: dict | str | Path) -> None:
        if isinstance(scenario, (str, Path)) and not (isinstance(scenario, str) and "\n" in scenario):
            scenario = scenario_mod.parse_text(Path(scenario).read_text(), source=str(scenario))
        elif isinstance(scenario, str):
            scenario = scenario_mod.parse_text(scenario)
        self._call("PUT", "/scenario", scenario)

    def patch_scenario(self, patch: dict) -> None:
        self._call("PATCH", "/scenario", patch)

    def reset(self) -> None:
        self._call("POST", "/reset")

    def patch_tenant(self, tenant: str, patch: dict) -> None:
        self._call("PATCH", f"/tenants/{quote(tenant)}", patch)

    def patch_user(self, upn: str, patch: dict) -> None:
        self._call("PATCH", f"/users/{quote(upn)}", patch)

    def add_user(self, tenant: str, user: dict) -> None:
        self._call("POST", f"/tenants/{quote(tenant)}/users", user)

    def delete_user(self, upn: str) -> None:
        self._call("DELETE", f"/users/{quote(upn)}")

    def add_policy(self, tenant: str, policy: dict) -> None:
        self._call("POST", f"/tenants/{quote(tenant)}/policies", policy)

    def patch_policy(self, tenant: str, name: str, patch: dict) -> None:
        self._call("PATCH", f"/tenants/{quote(tenant)}/policies/{quote(name, safe='')}", patch)

    def delete_policy(self, tenant: str, name: str) -> None:
        self._call("DELETE", f"/tenants/{quote(tenant)}/policies/{quote(name, safe='')}")

    def patch_network(self, patch: dict) -> None:
        self._call("PATCH", "/network", patch)

    # app registrations (scenario tenants[].apps)
    def add_app(self, tenant: str, app: dict) -> None:
        self._call("POST", f"/tenants/{quote(tenant)}/apps", app)

    def app(self, app_id: str) -> dict:
        """The app registration with ``keyCredentials`` (thumbprint, thumbprintSha256, notBefore, notAfter)."""
        return self._call("GET", f"/apps/{quote(app_id)}")

    def patch_app(self, app_id: str, patch: dict) -> None:
        """Merge patch, e.g. ``{"consented": True}``, ``{"enabled": False}``,
        ``{"permissions": {"graph": ["Sites.Read.All"]}}``."""
        self._call("PATCH", f"/apps/{quote(app_id)}", patch)

    def delete_app(self, app_id: str) -> None:
        self._call("DELETE", f"/apps/{quote(app_id)}")

    def add_app_certificate(self, app_id: str, *, pem: str | None = None, generated: str | None = None) -> None:
        """Register a public certificate (PEM or base64 DER) or a generated one on the app."""
        body = {"pem": pem} if pem is not None else {"generated": generated}
        self._call("POST", f"/apps/{quote(app_id)}/certificates", body)

    def remove_app_certificate(self, app_id: str, thumbprint: str) -> None:
        """Unregister by SHA-1 or SHA-256 thumbprint (hex) or by a generated certificate's name."""
        self._call("DELETE", f"/apps/{quote(app_id)}/certificates/{quote(thumbprint, safe='')}")

    def generated_certificate(self, name: str = "demo-app") -> dict:
        """``{name, thumbprint, thumbprintSha256, notBefore, notAfter, pem, pfxPath, cerPath}`` (the PFX's
        password is ``demo``)."""
        return self._call("GET", f"/certificates/{quote(name)}")

    # tenant aliases
    def add_tenant_alias(self, alias: str, tenant: str) -> str:
        """Make ``alias`` (a GUID no tenant has) a second id of ``tenant`` (id or domain), e.g. a test's
        own tenant id that signs in to the demo tenant contoso; return the tenant's own id."""
        return self._call("PUT", f"/tenant-aliases/{quote(alias)}", {"tenant": tenant})["tenant"]

    def remove_tenant_alias(self, alias: str) -> None:
        self._call("DELETE", f"/tenant-aliases/{quote(alias)}")

    def tenant_aliases(self) -> dict[str, str]:
        return self._call("GET", "/tenant-aliases")

    # faults
    def faults(self) -> dict:
        return self._call("GET", "/faults")

    def set_faults(self, faults: dict) -> dict:
        return self._call("PUT", "/faults", faults)

    def add_fault(self, endpoint: str, **rule) -> dict:
        """E.g. ``add_fault("entra.token", status=429, retryAfter=2, count=1)`` or ``latencyMs=300``."""
        return self._call("POST", "/faults/rules", dict(rule, endpoint=endpoint))

    def clear_faults(self) -> dict:
        return self._call("DELETE", "/faults")

    def add_hostile(self, endpoint: str, kind: str, **rule) -> dict:
        """E.g. ``add_hostile("sharepoint.sts", "billionLaughs", count=1)`` or ``("graph", "trickle")``."""
        return self._call("POST", "/faults/hostile", dict(rule, endpoint=endpoint, kind=kind))

    def clear_hostile(self) -> dict:
        return self._call("DELETE", "/faults/hostile")

    def set_outage(self, mode: str, seconds: float | None = None, retry_after: int | None = None) -> dict:
        body: dict = {"mode": mode}
        if seconds is not None:
            body["seconds"] = seconds
        if retry_after is not None:
            body["retryAfter"] = retry_after
        return self._call("PUT", "/faults/outage", body)

    def clear_outage(self) -> dict:
        return self._call("DELETE", "/faults/outage")

    def throttle_sharepoint_users(self, limit: int, window_seconds: float, *, retry_after: int | None = None,
                                  users: list[str] | None = None) -> dict:
        body: dict = {"limit": limit, "windowSeconds": window_seconds}
        if retry_after is not None:
            body["retryAfter"] = retry_after
        if users:
            body["users"] = users
        return self._call("PUT", "/faults/sharepoint-throttle", body)

    def clear_sharepoint_throttle(self) -> dict:
        return self._call("DELETE", "/faults/sharepoint-throttle")

    # observation
    def counters(self) -> dict:
        return self._call("GET", "/counters")

    def count(self, endpoint: str) -> int:
        return self.counters().get(endpoint, {}).get("requests", 0)

    def clear_counters(self) -> None:
        self._call("DELETE", "/counters")

    def signins(self, user: str | None = None) -> list[dict]:
        return self._call("GET", "/signins", **({"user": user} if user else {}))

    def clear_signins(self) -> None:
        self._call("DELETE", "/signins")

    def vault(self, name: str) -> dict:
        return self._call("GET", f"/vaults/{quote(name)}")

    def mint_token(self, audience: str, *, upn: str | None = None, app_id: str | None = None,
                   expires_in: int = 3600, claims: dict | None = None) -> str:
        body = {"audience": audience, "expiresIn": expires_in, "claims": claims or {}}
        if upn:
            body["upn"] = upn
        if app_id:
            body["appId"] = app_id
        return self._call("POST", "/tokens", body)["access_token"]
