"""The app profile's Validation Test, as pure rules: which application permissions a workload
needs (``app_permissions.json``, data), what the tokens' ``roles`` claims lack, and what the
certificate's dates say. The results are signals for the troubleshooting catalog (path ``app``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Mapping
from urllib.parse import urlencode

from shared.domain.certificates import CertificateInfo

#: A certificate that expires within this many days is reported (``CERTIFICATE_EXPIRING``).
EXPIRY_WARNING_DAYS = 30
RESOURCES = ("graph", "sharepoint")


@lru_cache(maxsize=1)
def permission_manifest() -> Mapping[str, Mapping]:
    return json.loads(Path(__file__).with_name("app_permissions.json").read_text(encoding="utf-8"))


def required_permissions(workload: str) -> dict[str, tuple[str, ...]]:
    """``{"graph": (...), "sharepoint": (...)}`` for ``workload``; KeyError for an unknown one."""
    entry = permission_manifest()["workloads"][workload]
    return {resource: tuple(entry.get(resource, ())) for resource in RESOURCES}


@dataclass(frozen=True)
class PermissionCheck:
    granted: dict[str, tuple[str, ...]]
    missing: dict[str, tuple[str, ...]]
    #: Limitation ids (``limitations.json``) of alternatives accepted in place of a permission.
    limitations: tuple[str, ...] = ()

    @property
    def nothing_granted(self) -> bool:
        """No role in any token: the app has no admin consent in this tenant."""
        return not any(self.granted.values())

    @property
    def complete(self) -> bool:
        return not any(self.missing.values())


def check_permissions(workload: str, roles: Mapping[str, tuple[str, ...]]) -> PermissionCheck:
    """Compare each resource token's ``roles`` with what ``workload`` needs (case-insensitive, as
    Entra's role values are compared)."""
    needed = required_permissions(workload)
    granted = {r: tuple(roles.get(r, ())) for r in RESOURCES}
    manifest = permission_manifest()
    alternatives = {k.lower(): v for k, v in manifest.get("alternatives", {}).items()}
    missing: dict[str, tuple[str, ...]] = {}
    limitations: list[str] = []
    for resource in RESOURCES:
        held = covered(granted[resource])
        lacking = []
        for permission in needed[resource]:
            if permission.lower() in held:
                continue
            alternative = alternatives.get(permission.lower())
            if alternative and alternative["permission"].lower() in held:
                limitations.append(alternative["limitation"])
                continue
            lacking.append(permission)
        missing[resource] = tuple(lacking)
    return PermissionCheck(granted, missing, tuple(dict.fromkeys(limitations)))


def covered(roles: tuple[str, ...]) -> set[str]:
    """The permissions ``roles`` hold, lowercase, with those they imply (``Sites.FullControl.All``
    holds ``Sites.Read.All``: the manifest's ``implies``, from the Graph permissions reference)."""
    implies = {k.lower(): [p.lower() for p in v] for k, v in permission_manifest().get("implies", {}).items()}
    held, todo = set(), [r.lower() for r in roles]
    while todo:
        role = todo.pop()
        if role not in held:
            held.add(role)
            todo.extend(implies.get(role, ()))
    return held


def permission_signal(check: PermissionCheck) -> str | None:
    """``APP_NO_ROLES`` (consent missing), ``APP_ROLES_MISSING`` (some missing) or None."""
    if check.nothing_granted:
        return "APP_NO_ROLES"
    return None if check.complete else "APP_ROLES_MISSING"


def certificate_signal(certificate: CertificateInfo, now: datetime, *,
                       warning_days: int = EXPIRY_WARNING_DAYS) -> str | None:
    """``CERT_EXPIRED``, ``CERT_EXPIRING`` (within ``warning_days``) or None."""
    if certificate.not_after <= now:
        return "CERT_EXPIRED"
    if certificate.days_left(now) < warning_days:
        return "CERT_EXPIRING"
    return None


def admin_consent_url(authority_host: str, tenant_id: str, client_id: str, *, redirect_uri: str | None = None) -> str:
    """The tenant-wide admin consent link of an app (Microsoft identity platform ``adminconsent``)."""
    query = {"client_id": client_id, **({"redirect_uri": redirect_uri} if redirect_uri else {})}
    return f"{authority_host}/{tenant_id}/adminconsent?{urlencode(query)}"
