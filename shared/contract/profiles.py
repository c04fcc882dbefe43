"""Profiles on the wire: create, merge-patch, list query, and the profile as the API shows it."""
from __future__ import annotations

from datetime import datetime
import base64
import binascii
from typing import Any, ClassVar, Literal, Optional

from pydantic import Field

from shared.contract.base import GUID_PATTERN, Guid, RequestModel, ResponseModel, absent, literal_of
from shared.domain.app_validation import permission_manifest, required_permissions
from shared.domain.errors import FieldError
from shared.domain.profile import AdminCenter as DomainAdminCenter
from shared.domain.profile import (ADMIN_CENTER_URL_MAX, ADMIN_CENTER_URL_PATTERN, DESCRIPTION_MAX, NAME_MAX,
                                   NAME_PATTERN, PASSWORD_MAX, UPN_MAX, UPN_PATTERN, AdminCenterMode,
                                   AppProfileInput, CertificateSource, GenerateCertificate, ImportCertificate, Kind,
                                   ProfileInput, ProfileView, admin_center_errors, guidance, limitation_catalog,
                                   profile_input)
from shared.domain.profile import Password as DomainPassword
from shared.domain.validation import LAST_STATUSES, OUTCOME_STATUSES, ValidationForm

WorkloadLiteral = literal_of(permission_manifest()["workloads"])
#: The tenant's SharePoint root (``https://contoso.sharepoint.com``), in any Microsoft cloud.
SHAREPOINT_URL_PATTERN = r"^https://[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.sharepoint(?:-mil)?\.(?:com|us|cn|de)$"
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
    client_id: str = absent(pattern=GUID_PATTERN, description="App profiles: the Application (client) ID")
    workload: WorkloadLiteral = absent(description="App profiles: the workload")  # type: ignore[valid-type]
    share_point_url: Optional[str] = Field(default=None, pattern=SHAREPOINT_URL_PATTERN, max_length=300,
                                           description="App profiles: the tenant's SharePoint URL (null: find it)")

    @classmethod
    def rule_errors(cls, raw: Any) -> list[FieldError]:
        return []  # checked on the merged profile (the service)

    def changes(self) -> dict[str, Any]:
        """The patch in request shape, only what the caller sent (``None`` = reset)."""
        return self.model_dump(by_alias=True, exclude_unset=True)


# --- app profiles --------------------------------------------------------------------------------

#: A PFX is a few KiB; 64 KiB of base64 leaves room for a chain.
PFX_BASE64_MAX = 65536
BASE64_PATTERN = r"^[A-Za-z0-9+/\r\n]+={0,2}$"
CERTIFICATE_CHOICE = "Send either generate: true (Key Vault creates the certificate) or pfx (with its password)."


class CertificateIn(RequestModel):
    """Where an app profile's certificate comes from: ``{"generate": true}`` (Key Vault creates it
    with a key that cannot be exported) or ``{"pfx": "<base64>", "password": "..."}`` (imported
    into Key Vault; the password is write-only)."""

    model_config = {"json_schema_extra": {"oneOf": [
        {"required": ["generate"], "not": {"anyOf": [{"required": ["pfx"]}, {"required": ["password"]}]}},
        {"required": ["pfx"], "not": {"required": ["generate"]}}]}}

    generate: Literal[True] = absent(description="Key Vault generates the certificate (non-exportable key)")
    pfx: str = absent(min_length=4, max_length=PFX_BASE64_MAX, pattern=BASE64_PATTERN,
                      description="A PKCS#12 file, base64; imported into Key Vault")
    password: str = Field(default=None, min_length=1, max_length=PASSWORD_MAX,
                          json_schema_extra=lambda schema: (schema.pop("default", None), schema.update(writeOnly=True)),
                          description="The PFX's password. Write-only: never returned.")

    @staticmethod
    def errors_of(raw: Any, prefix: str = "certificate") -> list[FieldError]:
        if not isinstance(raw, dict):
            return []
        errors = []
        if ("generate" in raw) == ("pfx" in raw):
            errors.append(FieldError(prefix, "choice", CERTIFICATE_CHOICE))
        elif "password" in raw and "pfx" not in raw:
            errors.append(FieldError(f"{prefix}.password".lstrip("."), "notAllowed", "A password belongs to a pfx."))
        return errors

    @classmethod
    def rule_errors(cls, raw: Any) -> list[FieldError]:
        return cls.errors_of(raw, prefix="")

    def source(self) -> CertificateSource:
        if self.pfx is not None:
            return ImportCertificate(_pfx_bytes(self.pfx), DomainPassword(self.password) if self.password else None)
        return GenerateCertificate()


def _pfx_bytes(text: str) -> bytes:
    """The PFX's bytes; base64 that does not decode gives no bytes, which Key Vault then refuses
    (one answer, ``certificate.pfx``, for every PFX it cannot read)."""
    try:
        return base64.b64decode(text + "=" * (-len(text.rstrip("=")) % 4))
    except (binascii.Error, ValueError):
        return b""


ClientId = Field(pattern=GUID_PATTERN, json_schema_extra={"format": "uuid"},
                 description="Application (client) ID of the Entra app registration")
SharePointUrl = Field(default=None, pattern=SHAREPOINT_URL_PATTERN, max_length=300,
                      description="The tenant's SharePoint URL, such as https://contoso.sharepoint.com (absent: "
                                  "the Validation Test finds it through Microsoft Graph and remembers it)")
WorkloadField = Field(default="backup", description="Which application permissions the app needs "
                                                    "(the required-permissions manifest)")


class AppProfileCreate(RequestModel):
    """An app profile: an Entra app registration that signs in with a certificate held in Key Vault."""

    MESSAGES: ClassVar[dict[tuple[str, str], str]] = MESSAGES

    kind: Literal["app"]
    name: str = Name
    description: Optional[str] = Description
    client_id: str = ClientId
    certificate: CertificateIn
    workload: WorkloadLiteral = WorkloadField  # type: ignore[valid-type]
    share_point_url: Optional[str] = SharePointUrl

    @classmethod
    def rule_errors(cls, raw: Any) -> list[FieldError]:
        return CertificateIn.errors_of(raw.get("certificate")) if isinstance(raw, dict) else []

    def to_input(self) -> AppProfileInput:
        return AppProfileInput(name=self.name.strip(), description=self.description or "",
                               client_id=self.client_id.lower(), certificate=self.certificate.source(),
                               workload=self.workload, sharepoint_url=self.share_point_url)


def parse_profile_create(raw: bytes) -> "ProfileCreate | AppProfileCreate":
    """The create body as the kind it names: ``"kind": "app"`` is an app profile, anything else
    the spec's MFA/common form (whose schema has no ``kind``)."""
    from shared.contract.base import _decode, parse_body

    decoded = _decode(raw)
    model = AppProfileCreate if isinstance(decoded, dict) and decoded.get("kind") == "app" else ProfileCreate
    return parse_body(model, raw)


class MigrateRequest(RequestModel):
    """Turn an MFA or common profile into an app profile (``POST .../migrate``)."""

    client_id: str = ClientId
    certificate: CertificateIn = Field(default_factory=lambda: CertificateIn(generate=True),
                                       description="Default: Key Vault generates it")
    workload: WorkloadLiteral = WorkloadField  # type: ignore[valid-type]
    share_point_url: Optional[str] = SharePointUrl

    @classmethod
    def rule_errors(cls, raw: Any) -> list[FieldError]:
        return CertificateIn.errors_of(raw.get("certificate")) if isinstance(raw, dict) else []

    def to_input(self, name: str, description: str) -> AppProfileInput:
        return AppProfileInput(name=name, description=description, client_id=self.client_id.lower(),
                               certificate=self.certificate.source(), workload=self.workload,
                               sharepoint_url=self.share_point_url)


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


class CertificateOut(ResponseModel):
    """An app profile's certificate: public facts only (the key stays in Key Vault)."""

    thumbprint: str = Field(description="SHA-1 thumbprint, hex (as the Entra admin center shows it)")
    not_before: datetime
    not_after: datetime
    days_left: int


class RequiredPermissions(ResponseModel):
    """Application permissions the app needs, per resource (the required-permissions manifest)."""

    graph: list[str]
    sharepoint: list[str]


class Profile(ResponseModel):
    """A profile (never its password, secret name or version, never a key)."""

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
    client_id: Optional[str] = Field(default=None, description="App profiles: Application (client) ID")
    workload: Optional[str] = Field(default=None, description="App profiles: the workload whose permissions it needs")
    share_point_url: Optional[str] = Field(default=None, description="App profiles: the tenant's SharePoint URL")
    certificate: Optional[CertificateOut] = Field(default=None, description="App profiles: the certificate")
    previous_certificate: Optional[CertificateOut] = Field(
        default=None, description="App profiles, after a rotation: the certificate it replaces, still accepted "
                                  "until the new one has signed in once")
    certificate_url: Optional[str] = Field(default=None, description="App profiles: the public certificate "
                                           "(PEM, or DER with Accept: application/pkix-cert) to upload to the app")
    admin_consent_url: Optional[str] = Field(default=None, description="App profiles: tenant-wide admin consent")
    required_permissions: Optional[RequiredPermissions] = None


class MigrationResult(ResponseModel):
    """A profile turned into an app profile: what to do in Entra ID before its first Validation Test."""

    profile: Profile
    certificate_url: str
    admin_consent_url: str
    required_permissions: RequiredPermissions
    next_steps: list[str]


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
        created_at=profile.created_at, updated_at=profile.updated_at, **_app_out(view))


def _certificate_out(certificate, now: datetime) -> CertificateOut | None:
    if certificate is None:
        return None
    return CertificateOut(thumbprint=certificate.thumbprint, not_before=certificate.not_before,
                          not_after=certificate.not_after, days_left=certificate.days_left(now))


def required_permissions_out(workload: str) -> RequiredPermissions:
    needed = required_permissions(workload)
    return RequiredPermissions(graph=list(needed["graph"]), sharepoint=list(needed["sharepoint"]))


def certificate_url(tenant_id: str, profile_id: str) -> str:
    return f"/api/tenants/{tenant_id}/profiles/{profile_id}/certificate"


def _app_out(view: ProfileView) -> dict[str, Any]:
    app, profile = view.profile.app, view.profile
    if app is None:
        return {}
    now = view.as_of or datetime.now(app.certificate.not_after.tzinfo)
    return {"client_id": app.client_id, "workload": app.workload, "share_point_url": app.sharepoint_url,
            "certificate": _certificate_out(app.certificate, now),
            "previous_certificate": _certificate_out(app.previous_certificate, now),
            "certificate_url": certificate_url(profile.tenant_id, profile.id),
            "admin_consent_url": view.admin_consent_url,
            "required_permissions": required_permissions_out(app.workload)}
