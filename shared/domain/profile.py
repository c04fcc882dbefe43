"""Service-account profiles: the fields and rules of the spec's "Edit MFA Service Account Profiles".

Pure domain: no SDK imports. The password is never a field of :class:`ServiceAccountProfile`; it
travels from the request to the secret store as a :class:`Password` that refuses to print itself.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from shared.domain.certificates import CertificateInfo
from shared.domain.errors import FieldError

NAME_MAX = 128
DESCRIPTION_MAX = 1000
UPN_MAX = 113  # Entra ID: 64 local part + @ + 48 domain
PASSWORD_MAX = 256
HISTORY_MAX = 50

#: Field formats, shared by the contract's JSON Schema and the server (Python ``re``, ``search``).
UPN_PATTERN = r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
#: Not blank, no control characters.
NAME_PATTERN = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
ADMIN_CENTER_URL_PATTERN = r"^https://[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?(?:/[^?#\s]*)?$"
ADMIN_CENTER_URL = re.compile(ADMIN_CENTER_URL_PATTERN)
ADMIN_CENTER_URL_MAX = 2048
#: Microsoft 365 app passwords are 16 lowercase letters.
APP_PASSWORD_SHAPE = re.compile(r"^[a-z]{16}$")


class Kind(str, Enum):
    MFA = "mfa"
    COMMON = "common"
    #: An Entra app registration signing in with a certificate whose key stays in Key Vault.
    APP = "app"


class AdminCenterMode(str, Enum):
    DEFAULT = "default"
    CUSTOM = "custom"


class Password:
    """A write-only secret value: its ``repr``/``str`` never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        """The value, for the one outgoing request (or Key Vault write) that needs it."""
        return self._value

    def __repr__(self) -> str:
        return "Password(***)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Password) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def looks_like_app_password(self) -> bool:
        return bool(APP_PASSWORD_SHAPE.match(self._value))


@dataclass(frozen=True)
class AdminCenter:
    mode: AdminCenterMode = AdminCenterMode.DEFAULT
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode.value, "url": self.url}


@dataclass(frozen=True)
class LastValidation:
    status: str
    message_id: str | None
    at: datetime
    job_id: str | None = None  #: the validation job it was part of (a copy of its message is a duplicate)


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    event: str  # created | converted | passwordChanged | updated | migrated | certificateRotated | secretRetired
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "event": self.event, "detail": self.detail}


@dataclass(frozen=True)
class SecretRef:
    """Where the password lives in Key Vault: name and the version this profile uses."""

    name: str
    version: str


#: Days before a certificate's end at which an app profile's outcome is published once more
#: (scheduled revalidation publishes one outcome per threshold crossed, not one per night).
CERTIFICATE_ALERT_DAYS = (30, 14, 7, 0)


def certificate_alert(days_left: int) -> int | None:
    """The lowest threshold of :data:`CERTIFICATE_ALERT_DAYS` that ``days_left`` has crossed
    (0: expired), or None when none is."""
    crossed = [t for t in CERTIFICATE_ALERT_DAYS if days_left <= t]
    return min(crossed) if crossed else None


@dataclass(frozen=True)
class AppRegistration:
    """What an app profile signs in as: the app's client id, its certificate in Key Vault (public
    facts and the key id only), the certificate it replaces while both are registered, the
    workload whose permissions it needs and the tenant's SharePoint URL (learned by the test)."""

    client_id: str
    certificate: CertificateInfo
    previous_certificate: CertificateInfo | None = None
    workload: str = "backup"
    sharepoint_url: str | None = None
    #: The last :func:`certificate_alert` threshold an outcome was published for.
    alert: int | None = None


@dataclass(frozen=True)
class ServiceAccountProfile:
    id: str
    tenant_id: str
    name: str
    description: str
    mfa_enabled: bool
    username: str
    admin_center: AdminCenter
    secret: SecretRef | None
    password_updated_at: datetime | None
    created_at: datetime
    updated_at: datetime
    last_validation: LastValidation | None = None
    #: Learned from validation: SharePoint blocks apps that don't use modern authentication.
    legacy_apps_blocked: bool = False
    history: tuple[HistoryEntry, ...] = ()
    etag: str | None = None
    #: Set for app profiles. A profile migrated from a user account keeps ``secret`` (its old
    #: password) until its first passed Validation Test as an app profile, then soft-deletes it.
    app: AppRegistration | None = None

    @property
    def kind(self) -> Kind:
        if self.app is not None:
            return Kind.APP
        return Kind.MFA if self.mfa_enabled else Kind.COMMON

    @property
    def limitations(self) -> tuple[str, ...]:
        return applicable_limitations(self.kind, legacy_apps_blocked=self.legacy_apps_blocked)

    def with_history(self, entry: HistoryEntry) -> "ServiceAccountProfile":
        return replace(self, history=(self.history + (entry,))[-HISTORY_MAX:])


@dataclass(frozen=True)
class ProfileView:
    """A profile as the API shows it: with its effective admin center URL (derived from the
    tenant when the default one is used)."""

    profile: ServiceAccountProfile
    effective_admin_center_url: str | None
    #: App profiles: the tenant-wide admin consent link of the app, and when the view was made
    #: (the certificate's days left are counted from it).
    admin_consent_url: str | None = None
    as_of: datetime | None = None


# --- limitations: a catalog that is data -------------------------------------------------------

@lru_cache(maxsize=1)
def limitation_catalog() -> dict[str, dict[str, str]]:
    raw = json.loads((Path(__file__).with_name("limitations.json")).read_text(encoding="utf-8"))
    return {row["id"]: row for row in raw["limitations"]}


def applicable_limitations(kind: Kind, *, legacy_apps_blocked: bool = False) -> tuple[str, ...]:
    ids = []
    for lid, row in limitation_catalog().items():
        if row["appliesTo"] != kind.value:
            continue
        when = row.get("when")
        if when and not {"legacyAppsBlocked": legacy_apps_blocked}.get(when, False):
            continue  # a condition the profile does not hold (or only an outcome can tell)
        ids.append(lid)
    return tuple(ids)


# --- input rules ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ProfileInput:
    """Validated form values (create, or the merged result of a PATCH)."""

    name: str
    description: str
    mfa_enabled: bool
    username: str
    admin_center: AdminCenter
    password: Password | None = field(default=None, repr=False)


@dataclass(frozen=True)
class GenerateCertificate:
    """Key Vault creates the certificate, with a key that cannot be exported."""


@dataclass(frozen=True)
class ImportCertificate:
    """A PFX (PKCS#12) the operator has, imported into Key Vault; its password is write-only."""

    pfx: bytes = field(repr=False)
    password: Password | None = field(default=None, repr=False)


CertificateSource = GenerateCertificate | ImportCertificate


@dataclass(frozen=True)
class AppProfileInput:
    """Validated values of a new app profile (or of a migration: no name, the profile keeps its own)."""

    name: str
    description: str
    client_id: str
    certificate: CertificateSource
    workload: str = "backup"
    sharepoint_url: str | None = None


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON Merge Patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def profile_as_form(profile: ServiceAccountProfile) -> dict[str, Any]:
    """The editable fields of a stored profile, in request shape (no password)."""
    return {"name": profile.name, "description": profile.description,
            "mfaEnabled": profile.mfa_enabled, "username": profile.username,
            "adminCenter": profile.admin_center.to_dict()}


def admin_center_errors(mfa_enabled: Any, admin_center: Any) -> list[FieldError]:
    """The rules between the MFA flag and the admin center (spec step 7), on request-shaped values
    (they may be of the wrong type: the contract reports those; this reports the rule).

    With MFA on the URL must be entered manually (mode ``custom``); a custom admin center needs an
    ``https://`` URL without query or fragment; the default one has no URL.
    """
    ac = admin_center if isinstance(admin_center, Mapping) else {}
    mode, url = ac.get("mode", AdminCenterMode.DEFAULT.value), ac.get("url")
    errors: list[FieldError] = []
    if mfa_enabled is True and mode != AdminCenterMode.CUSTOM.value:
        errors.append(FieldError(
            "adminCenter.mode", "mfaRequiresCustom",
            "With 'Our organization uses multi-factor authentication' selected, you must manually "
            "enter the SharePoint Online admin center URL (mode 'custom')."))
    if mode == AdminCenterMode.CUSTOM.value:
        if not isinstance(url, str) or not url:
            errors.append(FieldError("adminCenter.url", "required", "Enter the SharePoint Online admin center URL."))
        elif not ADMIN_CENTER_URL.search(url):
            errors.append(FieldError("adminCenter.url", "format",
                                     "Must be an absolute https:// URL without query or fragment, such as "
                                     "https://contoso-admin.sharepoint.com."))
    elif mode == AdminCenterMode.DEFAULT.value and url not in (None, ""):
        errors.append(FieldError("adminCenter.url", "notAllowed",
                                 "Only a custom admin center has a URL; choose mode 'custom'."))
    return errors


def profile_input(form: Mapping[str, Any]) -> ProfileInput:
    """A :class:`ProfileInput` from request-shaped values that passed the contract (or a stored
    profile merged with such a patch); raises :class:`InvalidInput` when a cross-field rule fails."""
    from shared.domain.errors import InvalidInput

    errors = admin_center_errors(form.get("mfaEnabled", False), form.get("adminCenter"))
    if errors:
        raise InvalidInput(errors)
    ac = form.get("adminCenter") or {}
    mode = AdminCenterMode(ac.get("mode") or AdminCenterMode.DEFAULT.value)
    url = ac.get("url") if mode is AdminCenterMode.CUSTOM else None
    password = form.get("password")
    return ProfileInput(name=form["name"].strip(), description=form.get("description") or "",
                        mfa_enabled=bool(form.get("mfaEnabled", False)), username=form["username"],
                        admin_center=AdminCenter(mode, url.rstrip("/") if url else None),
                        password=Password(password) if password else None)


def name_key(name: str) -> str:
    """Case-insensitive uniqueness key of a profile name within a tenant."""
    return " ".join(name.split()).casefold()


APP_GUIDANCE = (
    "Download the profile's public certificate (.cer) and upload it to the application in the Microsoft Entra "
    "admin center: App registrations > the application > Certificates & secrets > Certificates > Upload "
    "certificate. Its private key stays in Key Vault and cannot be exported.",
    "Add the application permissions this profile needs (API permissions > Add a permission > Application "
    "permissions), then have a Global Administrator grant admin consent with the consent link, and run the "
    "Validation Test.",
)


def guidance(profile_input: ProfileInput | ServiceAccountProfile) -> list[str]:
    """Notes from the spec that the caller should show next to the form."""
    if getattr(profile_input, "app", None) is not None:
        return list(APP_GUIDANCE)
    notes = ["AvePoint does not recommend that a personal active user account be used as the "
             "service account. We recommend you use a separate service account to manage all administration."]
    if profile_input.mfa_enabled:
        notes.append("With the Enable MFA option selected, you must enter the login ID of a Microsoft 365 "
                     "Global Administrator account or SharePoint Administrator account. This cannot be "
                     "verified with an app password: the User Role stays blank after the Validation Test.")
        notes.append("Enter the app password of the account in the Password field.")
    return notes


def sharepoint_url_of(admin_center_url: str | None) -> str | None:
    """The tenant's SharePoint URL from its admin center's (``https://contoso-admin.sharepoint.com``
    → ``https://contoso.sharepoint.com``); None when it is not of that form."""
    m = re.fullmatch(r"https://([A-Za-z0-9-]+)-admin(\.sharepoint(?:-mil)?\.(?:com|us|cn|de))/?", admin_center_url or "")
    return f"https://{m.group(1)}{m.group(2)}" if m else None
