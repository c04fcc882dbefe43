"""Everything the simulator knows at run time: the scenario (and its index), vault contents, faults,
counters and the sign-in log. Lives on the server's event loop; the control API mutates it.
"""
from __future__ import annotations

import copy
import time
import uuid
from collections import deque

from . import aadsts
from . import scenario as scenario_mod
from .faults import Counters, FaultEngine
from .keyvault import VaultStore
from .signin import Decision
from .tokens import TokenService
from .webutil import utc_iso

SIGNIN_LOG_LIMIT = 20000


class SimState:
    def __init__(self, scenario: dict, tokens: TokenService | None = None):
        self.initial = copy.deepcopy(scenario)
        self.tokens = tokens or TokenService()
        self.faults = FaultEngine()
        self.counters = Counters()
        self.signins: deque[dict] = deque(maxlen=SIGNIN_LOG_LIMIT)
        self.tenant_aliases: dict[str, str] = {}  # alias id -> tenant id (lower case); see add_tenant_alias
        #: policy id -> epoch seconds of its last change through the control API (Graph modifiedDateTime)
        self.policy_modified: dict[str, float] = {}
        self.load(scenario)

    # ------------------------------------------------------------------ scenario

    def load(self, scenario: dict) -> None:
        """Replace the scenario: directory, vault contents and faults all come from it."""
        self.scenario = scenario
        self.version = getattr(self, "version", 0) + 1
        self.directory = scenario_mod.Directory(scenario, self.tenant_aliases)
        self.vaults = VaultStore(scenario["vaults"])
        self.faults.configure(scenario["faults"])

    def update(self, scenario: dict) -> None:
        """Apply an edited scenario (merge patch) while keeping vault contents and runtime faults."""
        self._note_policy_changes(self.scenario, scenario)
        self.scenario = scenario
        self.version += 1
        self.directory = scenario_mod.Directory(scenario, self.tenant_aliases)
        for v in scenario["vaults"]:
            self.vaults.data.setdefault(v["name"].lower(), {})

    def _note_policy_changes(self, before: dict, after: dict) -> None:
        """Remember when a Conditional Access policy was added or changed (its modifiedDateTime)."""
        def policies(sc):
            return {p["id"]: p for t in sc.get("tenants", []) for p in t.get("conditionalAccess", [])}
        old, new, now = policies(before), policies(after), time.time()
        for pid, policy in new.items():
            if old.get(pid) != policy:
                self.policy_modified[pid] = now

    def add_tenant_alias(self, alias: str, tenant: str) -> str:
        """Let ``alias`` (a GUID no tenant has) address the tenant ``tenant`` (id or domain) too: its
        users, policies, SharePoint hosts and settings, as if it were one more name of that tenant.
        Kept across scenario changes (an alias of a tenant that is gone resolves to nothing) until
        removed or :meth:`reset`. Return the tenant's own id.

        :raises ScenarioError: naming what is wrong with ``alias`` or ``tenant``.
        """
        key = alias.lower()
        if not scenario_mod.GUID.fullmatch(key):
            raise scenario_mod.ScenarioError(f"alias: {alias!r} is not a GUID")
        if key in self.directory.tenants_by_key:
            raise scenario_mod.ScenarioError(f"alias: {alias} is already the id of a tenant")
        target = self.directory.tenant(tenant)
        if target is None:
            raise LookupError(f"no tenant {tenant}")
        self.tenant_aliases[key] = target["id"].lower()
        return target["id"]

    def remove_tenant_alias(self, alias: str) -> None:
        """:raises LookupError: when there is no such alias."""
        if self.tenant_aliases.pop(alias.lower(), None) is None:
            raise LookupError(f"no tenant alias {alias}")

    def reset(self) -> None:
        """Back to the scenario the simulator started with; faults, counters, sign-ins and tenant
        aliases cleared."""
        self.tenant_aliases.clear()
        self.policy_modified.clear()
        self.load(copy.deepcopy(self.initial))
        self.counters.clear()
        self.signins.clear()

    def client_ip(self, request) -> str:
        """The address Entra sees: the scenario's egress IP, or ``x-sim-client-ip`` (tests) when sent."""
        return request.headers.get("x-sim-client-ip") or self.scenario["network"]["egressIp"]

    # ------------------------------------------------------------------ sign-in log

    def log_signin(self, *, user: str | None, tenant: dict | None, path: str, ip: str | None,
                   app_id: str | None, resource: str | None, decision: Decision | None,
                   correlation_id: str | None = None, error_code: int | str | None = None,
                   policies: list[dict] | None = None, error_params: dict | None = None,
                   app_display_name: str | None = None, credential: str | None = None) -> None:
        """Record one sign-in as Entra does, with what its Graph sign-in log entry needs: the
        Conditional Access evaluation (``conditionalAccess``: id, name, displayName, state, grant,
        microsoftManaged, result), the correlation id the client sent, the failure's text.

        ``path``: ``ropc``, ``legacySts`` (extSTS.srf), ``clientCredentials`` (Entra sign-ins, listed by
        Graph) or ``spoSignin`` (SharePoint's cookie step, not an Entra sign-in)."""
        code = decision.code if decision is not None else error_code
        now = time.time()
        entry = {
            "id": str(uuid.uuid4()),
            "time": utc_iso(now, micro=True),
            "epoch": now,
            "user": user.lower() if user else None,
            "tenantId": tenant["id"] if tenant else None,
            "path": path,
            "result": "success" if code is None else "failure",
            "errorCode": code,
            "clientIp": ip,
            "appId": app_id,
            "resource": resource,
        }
        params = dict(decision.params) if decision is not None else dict(error_params or {})
        if isinstance(code, int) and code in aadsts.CATALOG:
            entry["failureReason"] = aadsts.message(code, **params).split(": ", 1)[1]
        if decision is not None:
            entry["appPassword"] = decision.app_password
            entry["conditionalAccess"] = decision.policies
        elif policies is not None:
            entry["conditionalAccess"] = policies
        if app_display_name:
            entry["appDisplayName"] = app_display_name
        if credential:
            entry["clientCredentialType"] = credential
        if correlation_id:
            entry["correlationId"] = correlation_id
        self.signins.append(entry)

    def signin_log(self, user: str | None = None) -> list[dict]:
        return [e for e in self.signins if user is None or e["user"] == user.lower()]
