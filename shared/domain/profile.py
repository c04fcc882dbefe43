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
from typing import Any
from urllib.parse import urlsplit

from shared.domain.errors import FieldError

NAME_MAX = 128
DESCRIPTION_MAX = 1000
UPN_MAX = 113  # Entra ID: 64 local part + @ + 48 domain
PASSWORD_MAX = 256
HISTORY_MAX = 50

_UPN = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: Microsoft 365 app passwords are 16 lowercase letters.
APP_PASSWORD_SHAPE = re.compile(r"^[a-z]{16}$")

CREATE_FIELDS = frozenset({"name", "description", "mfaEnabled", "username", "password", "adminCenter"})


class Kind(str, Enum):
    MFA = "mfa"
    COMMON = "common"


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

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "messageId": self.message_id, "at": self.at.isoformat()}


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    event: str  # created | converted | passwordChanged | updated
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "event": self.event, "detail": self.detail}


@dataclass(frozen=True)
class SecretRef:
    """Where the password lives in Key Vault: name and the version this profile uses."""

    name: str
    version: str


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

    @property
    def kind(self) -> Kind:
        return Kind.MFA if self.mfa_enabled else Kind.COMMON

    @property
    def limitations(self) -> tuple[str, ...]:
        return applicable_limitations(self.kind, legacy_apps_blocked=self.legacy_apps_blocked)

    def with_history(self, entry: HistoryEntry) -> "ServiceAccountProfile":
        return replace(self, history=(self.history + (entry,))[-HISTORY_MAX:])


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
        if row.get("when") == "legacyAppsBlocked" and not legacy_apps_blocked:
            continue
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


def _check_url(url: Any, errors: list[FieldError]) -> str | None:
    if not isinstance(url, str) or not url.strip():
        errors.append(FieldError("adminCenter.url", "required",
                                 "Enter the SharePoint Online admin center URL."))
        return None
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
        errors.append(FieldError("adminCenter.url", "format",
                                 "Must be an absolute https:// URL such as https://contoso-admin.sharepoint.com."))
        return None
    if parts.query or parts.fragment:
        errors.append(FieldError("adminCenter.url", "format",
                                 "Must not carry a query string or fragment."))
        return None
    if len(url) > 2048:
        errors.append(FieldError("adminCenter.url", "length", "Must be at most 2048 characters."))
        return None
    return url.rstrip("/")


def parse_profile_input(body: Any, *, require_password: bool) -> ProfileInput:
    """Check every field rule at once; raise :class:`InvalidInput` listing all violations.

    Rules (spec): Profile Name required; Description optional; Username a UPN; Password required
    when creating; with MFA on, the SharePoint Online admin center URL must be entered manually
    (mode ``custom`` with a URL).
    """
    from shared.domain.errors import InvalidInput

    errors: list[FieldError] = []
    if not isinstance(body, dict):
        raise InvalidInput([FieldError("", "type", "The body must be a JSON object.")])

    for unknown in sorted(set(body) - CREATE_FIELDS):
        errors.append(FieldError(unknown, "unknown", f"'{unknown}' is not a profile field."))

    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        errors.append(FieldError("name", "required", "Enter a name for the service account profile."))
        name = ""
    else:
        name = name.strip()
        if len(name) > NAME_MAX:
            errors.append(FieldError("name", "length", f"Must be at most {NAME_MAX} characters."))
        if _CONTROL.search(name):
            errors.append(FieldError("name", "format", "Must not contain control characters."))

    description = body.get("description")
    if description is None:
        description = ""
    elif not isinstance(description, str):
        errors.append(FieldError("description", "type", "Must be a string."))
        description = ""
    elif len(description) > DESCRIPTION_MAX:
        errors.append(FieldError("description", "length", f"Must be at most {DESCRIPTION_MAX} characters."))

    mfa = body.get("mfaEnabled", False)
    if not isinstance(mfa, bool):
        errors.append(FieldError("mfaEnabled", "type", "Must be true or false."))
        mfa = False

    username = body.get("username")
    if not isinstance(username, str) or not username.strip():
        errors.append(FieldError("username", "required", "Enter the login ID (UPN) of the service account."))
        username = ""
    else:
        username = username.strip()
        if len(username) > UPN_MAX or not _UPN.match(username):
            errors.append(FieldError("username", "format",
                                     "Must be a user principal name such as admin@contoso.onmicrosoft.com."))

    password: Password | None = None
    raw_password = body.get("password")
    if raw_password is None:
        if require_password:
            errors.append(FieldError("password", "required",
                                     "Enter the app password of the account." if mfa else
                                     "Enter the password of the account."))
    elif not isinstance(raw_password, str) or not raw_password:
        errors.append(FieldError("password", "type", "Must be a non-empty string."))
    elif len(raw_password) > PASSWORD_MAX:
        errors.append(FieldError("password", "length", f"Must be at most {PASSWORD_MAX} characters."))
    else:
        password = Password(raw_password)

    admin_center = AdminCenter()
    raw_ac = body.get("adminCenter")
    if raw_ac is None:
        raw_ac = {}
    if not isinstance(raw_ac, dict):
        errors.append(FieldError("adminCenter", "type", "Must be an object {mode, url}."))
        raw_ac = {}
    for unknown in sorted(set(raw_ac) - {"mode", "url"}):
        errors.append(FieldError(f"adminCenter.{unknown}", "unknown", f"'{unknown}' is not an admin center field."))
    mode_raw = raw_ac.get("mode", "default")
    try:
        mode = AdminCenterMode(mode_raw)
    except ValueError:
        errors.append(FieldError("adminCenter.mode", "enum", "Must be 'default' or 'custom'."))
        mode = AdminCenterMode.DEFAULT
    if mfa and mode is not AdminCenterMode.CUSTOM:
        errors.append(FieldError(
            "adminCenter.mode", "mfaRequiresCustom",
            "With 'Our organization uses multi-factor authentication' selected, you must manually "
            "enter the SharePoint Online admin center URL (mode 'custom')."))
    if mode is AdminCenterMode.CUSTOM:
        admin_center = AdminCenter(mode, _check_url(raw_ac.get("url"), errors))
    elif raw_ac.get("url") not in (None, ""):
        errors.append(FieldError("adminCenter.url", "notAllowed",
                                 "Only a custom admin center has a URL; choose mode 'custom'."))

    if errors:
        raise InvalidInput(errors)
    return ProfileInput(name=name, description=description, mfa_enabled=mfa, username=username,
                        admin_center=admin_center, password=password)


def name_key(name: str) -> str:
    """Case-insensitive uniqueness key of a profile name within a tenant."""
    return " ".join(name.split()).casefold()


def guidance(profile_input: ProfileInput | ServiceAccountProfile) -> list[str]:
    """Notes from the spec that the caller should show next to the form."""
    notes = ["AvePoint does not recommend that a personal active user account be used as the "
             "service account. We recommend you use a separate service account to manage all administration."]
    if profile_input.mfa_enabled:
        notes.append("With the Enable MFA option selected, you must enter the login ID of a Microsoft 365 "
                     "Global Administrator account or SharePoint Administrator account. This cannot be "
                     "verified with an app password: the User Role stays blank after the Validation Test.")
        notes.append("Enter the app password of the account in the Password field.")
    return notes
