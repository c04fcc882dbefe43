"""azd hooks of this template (azure.yaml): ``preprovision`` and ``postprovision``.

    python3 infra/hooks/azd_hooks.py preprovision    # register Microsoft.App when static egress is on
    python3 infra/hooks/azd_hooks.py postprovision   # wait until new role assignments have propagated

Standard library only (the operator's Python 3.11, no venv). Azure Resource Manager is called with
the token of the principal azd itself is signed in as (``azd auth token``), so neither hook needs the
Azure CLI. The ARM endpoint follows azd's cloud (``azd config get cloud.name``).

preprovision
    With static egress (``ENABLE_STATIC_EGRESS``, default true) the integration subnet is delegated to
    ``Microsoft.App/environments``. A delegation does not register its resource provider the way a
    deployed resource type does, so on a subscription where ``Microsoft.App`` is not registered the
    deployment fails. The hook registers it (``Microsoft.App/register/action``, part of Contributor)
    and waits, bounded, until the registration is done.

postprovision
    Role assignments take minutes to propagate. The first ``azd deploy`` right after they were
    created can fail with 403 when the platform writes the package to the deployment container with
    the app's identity (Storage Blob Data Owner). The hook reads when the identity's roles on the
    storage account were created and, if that is less than ``ROLE_PROPAGATION_SECONDS`` (default 300)
    ago, waits out the rest. Later provisions, whose assignments are old, do not wait.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping

ARM_ENDPOINTS = {
    "AzureCloud": "https://management.azure.com",
    "AzureUSGovernment": "https://management.usgovcloudapi.net",
    "AzureChinaCloud": "https://management.chinacloudapi.cn",
}
PROVIDERS_API = "2021-04-01"
ROLE_ASSIGNMENTS_API = "2022-04-01"
#: Storage Blob Data Owner (tests/data/azure-builtin-roles.json): the role the deployment needs.
BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
DEFAULT_PROPAGATION_SECONDS = 300
REGISTRATION_TIMEOUT_SECONDS = 600
POLL_SECONDS = 10

#: ``arm(method, path) -> JSON body``; raises :class:`ArmError`.
Arm = Callable[[str, str], Any]


class ArmError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


def log(message: str) -> None:
    print(f"[azd hook] {message}", flush=True)


def _run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()


def arm_endpoint() -> str:
    try:
        cloud = _run("azd", "config", "get", "cloud.name")
    except (OSError, subprocess.CalledProcessError):
        cloud = ""  # not set: azd uses the public cloud
    cloud = cloud.strip().strip('"') or "AzureCloud"
    if cloud not in ARM_ENDPOINTS:
        raise SystemExit(f"azd cloud {cloud!r} is not one this hook knows: {sorted(ARM_ENDPOINTS)}")
    return ARM_ENDPOINTS[cloud]


def azd_arm() -> Arm:
    """An ARM caller with azd's own sign-in."""
    endpoint = arm_endpoint()
    token_json = _run("azd", "auth", "token", "--output", "json", "--no-prompt",
                      "--scope", f"{endpoint}/.default")
    token = json.loads(token_json)["token"]

    def call(method: str, path: str) -> Any:
        request = urllib.request.Request(f"{endpoint}{path}", method=method, data=b"" if method == "POST" else None,
                                         headers={"Authorization": f"Bearer {token}",
                                                  "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            raise ArmError(exc.code, exc.read().decode("utf-8", "replace")[:500]) from exc
        return json.loads(body) if body else {}

    return call


def is_true(value: str | None, *, default: bool) -> bool:
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


# ---------------------------------------------------------------------------------------------
# preprovision: the Microsoft.App resource provider
# ---------------------------------------------------------------------------------------------

def ensure_provider(arm: Arm, subscription_id: str, namespace: str, *,
                    sleep: Callable[[float], None] = time.sleep,
                    timeout_seconds: float = REGISTRATION_TIMEOUT_SECONDS) -> str:
    """Register ``namespace`` unless it is registered; return its final registration state."""
    path = f"/subscriptions/{subscription_id}/providers/{namespace}"
    state = arm("GET", f"{path}?api-version={PROVIDERS_API}").get("registrationState", "")
    if state == "Registered":
        log(f"{namespace} is registered on subscription {subscription_id}.")
        return state
    log(f"{namespace} is {state or 'not registered'} on subscription {subscription_id}: registering it.")
    try:
        arm("POST", f"{path}/register?api-version={PROVIDERS_API}")
    except ArmError as exc:
        raise SystemExit(
            f"Could not register {namespace} ({exc}). Someone with Contributor on the subscription can "
            f"run `az provider register --namespace {namespace}`; or turn static egress off with "
            "`azd env set ENABLE_STATIC_EGRESS false` (then RESERVED_IP_RANGES must be set).") from exc
    waited = 0.0
    while True:
        state = arm("GET", f"{path}?api-version={PROVIDERS_API}").get("registrationState", "")
        if state == "Registered":
            log(f"{namespace} registered.")
            return state
        if waited >= timeout_seconds:
            raise SystemExit(f"{namespace} is still {state!r} after {int(waited)} s; rerun azd provision "
                             "once `az provider show --namespace "
                             f"{namespace} --query registrationState` says Registered.")
        sleep(POLL_SECONDS)
        waited += POLL_SECONDS


def preprovision(env: Mapping[str, str], arm_factory: Callable[[], Arm] = azd_arm) -> int:
    if not is_true(env.get("ENABLE_STATIC_EGRESS"), default=True):
        log("Static egress is off: no virtual network, Microsoft.App is not needed.")
        return 0
    subscription_id = env.get("AZURE_SUBSCRIPTION_ID", "").strip()
    if not subscription_id:
        log("AZURE_SUBSCRIPTION_ID is not set yet, so Microsoft.App was not checked. If provisioning "
            "fails on the subnet delegation, run `az provider register --namespace Microsoft.App` "
            "and provision again.")
        return 0
    ensure_provider(arm_factory(), subscription_id, "Microsoft.App")
    return 0


# ---------------------------------------------------------------------------------------------
# postprovision: role propagation before the first deploy
# ---------------------------------------------------------------------------------------------

def _parse_time(value: str) -> datetime:
    # ARM: 2026-12-01T10:03:05.1234567Z (7 fractional digits at most; Python takes 6)
    value = value.strip().replace("Z", "+00:00")
    if "." in value:
        head, rest = value.split(".", 1)
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits):]
        value = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def newest_assignment(assignments: list[dict], role_definition_guid: str) -> datetime | None:
    """When the newest assignment of ``role_definition_guid`` in an ARM list answer was created."""
    times = [_parse_time(a["properties"]["createdOn"]) for a in assignments
             if a.get("properties", {}).get("roleDefinitionId", "").lower().endswith(role_definition_guid)
             and a["properties"].get("createdOn")]
    return max(times) if times else None


def remaining_wait(created: datetime | None, now: datetime, propagation_seconds: float) -> float:
    """Seconds still to wait so that ``propagation_seconds`` have passed since ``created``."""
    if created is None:
        return 0.0
    return max(0.0, (created + timedelta(seconds=propagation_seconds) - now).total_seconds())


def postprovision(env: Mapping[str, str], arm_factory: Callable[[], Arm] = azd_arm, *,
                  now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                  sleep: Callable[[float], None] = time.sleep) -> int:
    names = ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZURE_STORAGE_ACCOUNT_NAME",
             "AZURE_MANAGED_IDENTITY_PRINCIPAL_ID")
    values = {n: env.get(n, "").strip() for n in names}
    missing = [n for n, v in values.items() if not v]
    if missing:
        log(f"{', '.join(missing)} not set: not waiting for role propagation. If the first deploy "
            "fails with 403 on the deployment container, run `azd deploy` again in a few minutes.")
        return 0
    try:
        propagation = float(env.get("ROLE_PROPAGATION_SECONDS") or DEFAULT_PROPAGATION_SECONDS)
    except ValueError:
        raise SystemExit("ROLE_PROPAGATION_SECONDS must be a number of seconds") from None
    scope = (f"/subscriptions/{values['AZURE_SUBSCRIPTION_ID']}/resourceGroups/"
             f"{values['AZURE_RESOURCE_GROUP']}/providers/Microsoft.Storage/storageAccounts/"
             f"{values['AZURE_STORAGE_ACCOUNT_NAME']}")
    query = (f"{scope}/providers/Microsoft.Authorization/roleAssignments?api-version={ROLE_ASSIGNMENTS_API}"
             f"&$filter=principalId%20eq%20'{values['AZURE_MANAGED_IDENTITY_PRINCIPAL_ID']}'")
    try:
        assignments = arm_factory()("GET", query).get("value", [])
    except ArmError as exc:
        log(f"Could not read the role assignments ({exc}); not waiting. If the first deploy fails "
            "with 403, run `azd deploy` again in a few minutes.")
        return 0
    created = newest_assignment(assignments, BLOB_DATA_OWNER)
    if created is None:
        # The list is eventually consistent too: an assignment made seconds ago may not be in it.
        log("The identity's Storage Blob Data Owner assignment is not listed yet: taking it as just made.")
        created = now()
    wait = remaining_wait(created, now(), propagation)
    if wait <= 0:
        log(f"Role assignments created {created:%Y-%m-%d %H:%M:%S} UTC: propagated, no wait.")
        return 0
    log(f"Role assignments created {created:%H:%M:%S} UTC; waiting {int(wait)} s more for them to "
        f"propagate before the deploy (ROLE_PROPAGATION_SECONDS={int(propagation)}).")
    sleep(wait)
    return 0


HOOKS = {"preprovision": preprovision, "postprovision": postprovision}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in HOOKS:
        print(f"usage: {argv[0]} {{{'|'.join(HOOKS)}}}", file=sys.stderr)
        return 2
    return HOOKS[argv[1]](os.environ)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
