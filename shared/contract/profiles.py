"""Profiles on the wire: create, merge-patch, list query, and the profile as the API shows it."""
from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Optional

from pydantic import Field

from shared.contract.base import Guid, RequestModel, ResponseModel, absent, literal_of
from shared.domain.errors import FieldError
from shared.domain.profile import AdminCenter as DomainAdminCenter
from shared.domain.profile import (ADMIN_CENTER_URL_MAX, ADMIN_CENTER_URL_PATTERN, DESCRIPTION_MAX, NAME_MAX,
                                   NAME_PATTERN, PASSWORD_MAX, UPN_MAX, UPN_PATTERN, AdminCenterMode, Kind,
                                   ProfileInput, ProfileView, admin_center_errors, guidance, limitation_catalog,
                                   profile_input)
from shared.domain.profile import Password as DomainPassword
from shared.domain.validation import LAST_STATUSES, OUTCOME_STATUSES, ValidationForm

ModeLiteral = literal_of(AdminCenterMode)
KindLiteral = literal_of(Kind)
LimitationId = literal_of(limitation_catalog())
OutcomeStatus = literal_of(OUTCOME_STATUSES)
LastStatus = literal_of(LAST_STATUSES)

Name = Field(min_length=1, max_length=NAME_MAX, pattern=NAME_PATTERN,
             description="Profile Name (unique per tenant; not blank, no control characters)")
Username = Field(max_length=UPN_MAX, pattern=UPN_PATTERN,
                 description="Username: the login ID (UPN) of the service account")
Password = Field(min_length=1, max_length=PASSWORD_MAX, json_schema_extra={"writeOnly": True},
                 description="Password, or the app password when MFA is on. Write-only: never returned.")
Description = Field(default=None, max_length=DESCRIPTION_MAX)
MfaEnabled = Field(default=False, description="Our organization uses multi-factor authentication")

#: The spec's admin-center rules as JSON Schema (the server checks the same through
#: :func:`shared.domain.profile.admin_center_errors`).
ADMIN_CENTER_RULES = [
    {"if": {"required": ["mode"], "properties": {"mode": {"const": "custom"}}},
     "then": {"required": ["url"], "properties": {"url": {"type": "string", "minLength": 1,
                                                          "pattern": ADMIN_CENTER_URL_PATTERN}}},
     "else": {"properties": {"url": {"enum": [None, ""]}}}},
]
MFA_RULE = {"if": {"required": ["mfaEnabled"], "properties": {"mfaEnabled": {"const": True}}},
            "then": {"required": ["adminCenter"],
                     "properties": {"adminCenter": {"type": "object", "required": ["mode"],
                                                    "properties": {"mode": {"const": "custom"}}}}}}


class AdminCenterIn(RequestModel):
    """SharePoint Online admin center URL: ``default`` (derived from the tenant) or ``custom``
    (entered manually; mandatory when MFA is on)."""

    model_config = {"json_schema_extra": {"allOf": ADMIN_CENTER_RULES}}

    mode: ModeLiteral = "default"  # type: ignore[valid-type]
    url: Optional[str] = Field(default=None, max_length=ADMIN_CENTER_URL_MAX)


class AdminCenterPatch(RequestModel):
    mode: Optional[ModeLiteral] = None  # type: ignore[valid-type]
    url: Optional[str] = Field(default=None, max_length=ADMIN_CENTER_URL_MAX)


MESSAGES = {
    ("name", "required"): "Enter a name for the service account profile.",
    ("name", "format"): "Enter a name for the service account profile (not blank, no control characters).",
    ("username", "required"): "Enter the login ID (UPN) of the service account.",
    ("username", "format"): "Must be a user principal name such as admin@contoso.onmicrosoft.com.",
    ("password", "required"): "Enter the password of the account (the app password when MFA is on).",
}


class _ProfileRules(RequestModel):
    MESSAGES: ClassVar[dict[tuple[str, str], str]] = MESSAGES

    @classmethod
    def rule_errors(cls, raw: Any) -> list[FieldError]:
        if not isinstance(raw, dict):
            return []
        return admin_center_errors(raw.get("mfaEnabled", False), raw.get("adminCenter"))


class ProfileCreate(_ProfileRules):
    """The spec's "Edit MFA Service Account Profiles" form."""

    model_config = {"json_schema_extra": {"allOf": [MFA_RULE]}}

    name: str = Name
    description: Optional[str] = Description
    mfa_enabled: bool = MfaEnabled
    username: str = Username
    password: str = Password
    admin_center: AdminCenterIn = Field(default_factory=AdminCenterIn)

    def dump_form(self) -> dict[str, Any]:
        """The form in request shape, for :func:`shared.domain.profile.profile_input`."""
        return self.model_dump(by_alias=True)

    def to_input(self) -> ProfileInput:
        return profile_input(self.dump_form())


class ValidationTestRequest(ProfileCreate):
    """Unsaved form values for the Validation Test; the password is used for this one sign-in."""

    name: Optional[str] = Field(default=None, min_length=1, max_length=NAME_MAX, pattern=NAME_PATTERN,
                                description="Not used by the test (the form's Profile Name)")

    def to_form(self, tenant_id: str) -> ValidationForm:
        ac = self.admin_center
        mode = AdminCenterMode(ac.mode)
        url = ac.url.rstrip("/") if mode is AdminCenterMode.CUSTOM and ac.url else None
        return ValidationForm(tenant_id=tenant_id, username=self.username, password=DomainPassword(self.password),
                              mfa_enabled=self.mfa_enabled, admin_center=DomainAdminCenter(mode, url))


class ProfilePatch(_ProfileRules):
    """JSON Merge Patch (RFC 7396) of the editable fields: ``null`` resets a field to its default.
    The merged profile must pass the same rules as a create."""

    name: str = absent(min_length=1, max_length=NAME_MAX, pattern=NAME_PATTERN, description="Profile Name")
    description: Optional[str] = Description
    mfa_enabled: Optional[bool] = Field(default=None, description="null: off")
    username: str = absent(max_length=UPN_MAX, pattern=UPN_PATTERN, description="Username (UPN)")
    password: Optional[str] = Field(default=None, min_length=1, max_length=PASSWORD_MAX,
                                    json_schema_extra={"writeOnly": True},
                                    description="A new password (null or absent: unchanged). Write-only.")
    admin_center: Optional[AdminCenterPatch] = None

    @classmethod
    def rule_errors(cls, raw: Any) -> list[FieldError]:
        return []  # checked on the merged profile (the service)

    def changes(self) -> dict[str, Any]:
        """The patch in request shape, only what the caller sent (``None`` = reset)."""
        return self.model_dump(by_alias=True, exclude_unset=True)


class ListProfilesQuery(RequestModel):
    model_config = {"strict": False, "extra": "ignore"}

    kind: Optional[KindLiteral] = None  # type: ignore[valid-type]
    last_status: Optional[LastStatus] = None  # type: ignore[valid-type]
    page_size: int = Field(default=50, ge=1, le=200)  # a query string: lax, "50" is 50
    continuation_token: Optional[str] = Field(default=None, min_length=1, max_length=4096)


# --- responses ---------------------------------------------------------------------------------

class LastValidation(ResponseModel):
    status: OutcomeStatus  # type: ignore[valid-type]
    message_id: Optional[str]
    at: datetime


class AdminCenter(ResponseModel):
    mode: ModeLiteral  # type: ignore[valid-type]
    url: Optional[str]
    effective_url: Optional[str] = Field(description="The custom URL, or the default one derived from the tenant")


class Limitation(ResponseModel):
    id: LimitationId  # type: ignore[valid-type]
    text: str


class HistoryEntry(ResponseModel):
    at: datetime
    event: str = Field(description="created | converted | passwordChanged | updated")
    detail: str


class Profile(ResponseModel):
    """A profile (never its password, secret name or version)."""

    id: Guid
    tenant_id: Guid
    name: str
    description: str
    kind: KindLiteral  # type: ignore[valid-type]
    mfa_enabled: bool
    username: str
    admin_center: AdminCenter
    password_set: bool
    password_updated_at: Optional[datetime]
    last_validation: Optional[LastValidation]
    limitations: list[LimitationId]  # type: ignore[valid-type]
    limitation_details: list[Limitation]
    guidance: list[str]
    history: list[HistoryEntry]
    etag: Optional[str]
    created_at: datetime
    updated_at: datetime


class ProfilePage(ResponseModel):
    items: list[Profile]
    continuation_token: Optional[str]
    next_link: Optional[str]


def profile_out(view: ProfileView) -> Profile:
    """The one mapping from the domain profile to its wire shape."""
    profile, effective_url = view.profile, view.effective_admin_center_url
    catalog = limitation_catalog()
    ac = profile.admin_center
    return Profile(
        id=profile.id, tenant_id=profile.tenant_id, name=profile.name, description=profile.description,
        kind=profile.kind.value, mfa_enabled=profile.mfa_enabled, username=profile.username,
        admin_center=AdminCenter(mode=ac.mode.value, url=ac.url, effective_url=effective_url),
        password_set=profile.secret is not None, password_updated_at=profile.password_updated_at,
        last_validation=profile.last_validation, limitations=list(profile.limitations),
        limitation_details=[Limitation(id=lid, text=catalog[lid]["text"]) for lid in profile.limitations],
        guidance=guidance(profile), history=list(profile.history), etag=profile.etag,
        created_at=profile.created_at, updated_at=profile.updated_at)
