"""The Validation Test's model: the form it tests, the roles it looks for, the outcome it returns.

Pure domain: no SDK imports. The password travels as :class:`~shared.domain.profile.Password`,
which never prints itself; nothing in a :class:`ValidationOutcome` can hold it. An app profile's
form (:class:`AppValidationForm`) holds no key at all: only the certificate's public metadata and
the signer (Key Vault's sign operation in production), which is never printed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Mapping
from urllib.parse import urlsplit

from shared.domain.certificates import CertificateInfo
from shared.domain.diagnosis import Explanation
from shared.domain.profile import APP_PASSWORD_SHAPE, AdminCenter, AdminCenterMode, Password

#: The spec's note for MFA profiles (step 6), shown next to the blank User Role.
USER_ROLE_NOTE_MFA = ("As the Microsoft 365 user has multi-factor authentication (MFA) enabled, the user "
                      "role information cannot be retrieved due to Microsoft API limitations, and the User "
                      "Role field will be blank.")
#: The spec's requirement for MFA profiles (step 4), which the role check cannot verify.
MFA_ROLE_REQUIREMENT = ("With the Enable MFA option selected, you must enter the login ID of a Microsoft 365 "
                        "Global Administrator account or SharePoint Administrator account.")

GLOBAL_ADMINISTRATOR = "Global Administrator"
SHAREPOINT_ADMINISTRATOR = "SharePoint Administrator"
OTHER_ROLE = "other"
#: Directory role template ids (the same in every tenant), strongest first.
REQUIRED_ROLE_TEMPLATES: tuple[tuple[str, str], ...] = (
    ("62e90394-69f5-4237-9190-012177145e10", GLOBAL_ADMINISTRATOR),
    ("f28a1f50-f6e7-4571-818b-6a12f2af6b6c", SHAREPOINT_ADMINISTRATOR),
)

MODERN, LEGACY, INPUT = "modern", "legacy", "input"
#: The client-credentials sign-in of an app profile's Entra app registration (certificate in Key Vault).
APP = "app"
PASSED, FAILED, ERROR, SKIPPED = "passed", "failed", "error", "skipped"
NEVER = "never"
#: The enums of the outcome, in one place (the contract and the OpenAPI take them from here).
SIGN_IN_PATHS = (MODERN, LEGACY, INPUT, APP)
OUTCOME_STATUSES = (PASSED, FAILED, ERROR)
CHECK_STATUSES = (PASSED, FAILED, SKIPPED)
CHECK_NAMES = ("input", "signIn", "role", "adminCenter", "permissions", "sharePoint", "certificate")
#: ``lastStatus`` filters: an outcome status, or never validated.
LAST_STATUSES = OUTCOME_STATUSES + (NEVER,)

_TENANT = re.compile(r"^(?:[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"
                     r"|(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})$")


def user_role(role_template_ids: tuple[str, ...] | list[str]) -> str:
    """``Global Administrator``, ``SharePoint Administrator`` or ``other`` (the strongest held)."""
    held = {r.lower() for r in role_template_ids}
    for template_id, name in REQUIRED_ROLE_TEMPLATES:
        if template_id in held:
            return name
    return OTHER_ROLE


def password_shape(password: Password) -> str:
    """``appPassword`` for 16 lowercase letters (Microsoft's app password shape), else ``other``."""
    return "appPassword" if APP_PASSWORD_SHAPE.match(password.reveal()) else "other"


@dataclass(frozen=True)
class ValidationForm:
    """The values the Validation Test signs in with (unsaved form values or a saved profile).

    :ivar tenant_id: the Microsoft 365 tenant id (GUID) or one of its domain names.
    :ivar password: the password (MFA off) or the app password (MFA on).
    """

    tenant_id: str
    username: str
    password: Password = field(repr=False)
    mfa_enabled: bool = False
    admin_center: AdminCenter = AdminCenter()

    @property
    def sign_in_path(self) -> str:
        return LEGACY if self.mfa_enabled else MODERN

    @property
    def admin_center_url(self) -> str | None:
        """The custom URL without a trailing slash, when one is set."""
        if self.admin_center.mode is AdminCenterMode.CUSTOM and self.admin_center.url:
            return self.admin_center.url.rstrip("/")
        return None


@dataclass(frozen=True)
class AppValidationForm:
    """What the Validation Test of an app profile signs in with: an Entra app registration and its
    certificate, whose private key stays in Key Vault.

    :ivar certificate: the profile's current certificate (public metadata; ``key_id`` names the
        Key Vault key that signs).
    :ivar sign: ``(key_id, sha256 digest) -> RS256 signature``; Key Vault's sign in production.
    :ivar admin_consent_url: computed by the service, quoted in ``APP_CONSENT_MISSING``'s solution.
    :ivar workload: a key of ``app_permissions.json`` ``workloads``.
    :ivar sharepoint_url: ``https://contoso.sharepoint.com``; None: discovered with Graph
        ``GET /v1.0/sites/root`` (the outcome carries it, so that the service can remember it).
    :ivar previous_certificate: during a rotation, the certificate still registered and not yet
        retired; it signs when the current one is not registered (AADSTS700027).
    """

    tenant_id: str
    client_id: str
    certificate: CertificateInfo
    sign: Callable[[str, bytes], bytes] = field(repr=False)
    admin_consent_url: str = ""
    workload: str = "backup"
    sharepoint_url: str | None = None
    previous_certificate: CertificateInfo | None = None

    @property
    def sign_in_path(self) -> str:
        return APP


@dataclass(frozen=True)
class CertificateStatus:
    """The dates of the certificate that signed an app profile's test (public facts only)."""

    thumbprint: str
    not_before: datetime
    not_after: datetime
    days_left: int


def input_problems(form: ValidationForm) -> tuple[str | None, list[str]]:
    """What keeps the test from starting: ``(signal code, [field: problem, ...])``.

    ``INPUT_ADMIN_CENTER_URL_REQUIRED`` when MFA is on without a custom URL (spec step 7) and
    nothing else is wrong, ``INPUT_INVALID`` for any other problem, ``(None, [])`` when fine.
    """
    problems = []
    if not _TENANT.match(form.tenant_id or ""):
        problems.append("tenantId: not a Microsoft 365 tenant ID (GUID) or domain name")
    if not form.username or "@" not in form.username or any(c.isspace() for c in form.username):
        problems.append("username: enter the login ID of the account, such as admin@contoso.onmicrosoft.com")
    if not form.password.reveal():
        problems.append("password: enter the app password of the account" if form.mfa_enabled
                        else "password: enter the password of the account")
    url = form.admin_center_url
    if url:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname or parts.username or parts.password \
                or parts.query or parts.fragment:
            problems.append("adminCenter.url: must be an https:// URL such as https://contoso-admin.sharepoint.com")
    url_missing = form.mfa_enabled and not url
    if url_missing and not problems:
        return "INPUT_ADMIN_CENTER_URL_REQUIRED", ["adminCenter.url: required when MFA is used"]
    if url_missing:
        problems.append("adminCenter.url: required when MFA is used (custom admin center URL)")
    return ("INPUT_INVALID", problems) if problems else (None, [])


_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def app_input_problems(form: AppValidationForm, workloads: "Mapping[str, object] | tuple[str, ...]") -> list[str]:
    """What keeps an app profile's test from starting (``[field: problem, ...]``; empty when fine).

    :param workloads: the workloads of the permission manifest.
    """
    problems = []
    if not _TENANT.match(form.tenant_id or ""):
        problems.append("tenantId: not a Microsoft 365 tenant ID (GUID) or domain name")
    if not _GUID.match(form.client_id or ""):
        problems.append("clientId: not an Application (client) ID (GUID)")
    if form.workload not in workloads:
        problems.append(f"workload: one of {', '.join(sorted(workloads))}")
    if form.sharepoint_url is not None:
        parts = urlsplit(form.sharepoint_url)
        if parts.scheme != "https" or not parts.hostname or parts.username or parts.password \
                or parts.query or parts.fragment or parts.path.strip("/"):
            problems.append("sharePointUrl: must be the tenant's SharePoint Online root, such as "
                            "https://contoso.sharepoint.com")
    return problems


@dataclass(frozen=True)
class Check:
    name: str      # signIn | role | adminCenter | input
    status: str    # passed | failed | skipped
    detail: str = ""


@dataclass(frozen=True)
class Evidence:
    """What the upstream said, for support (never a secret or a token)."""

    sign_in_path: str
    aadsts_code: str | None = None
    http_status: int | None = None
    correlation_id: str | None = None
    trace_id: str | None = None
    retry_after_seconds: int | None = None
    step: str | None = None
    error_code: str | None = None
    upstream_requests: int = 0


@dataclass(frozen=True)
class ValidationOutcome:
    """The result of one Validation Test; its wire shape is :class:`shared.contract.validation.ValidationOutcome`.

    ``status`` is ``passed``, ``failed`` (the account or its settings need fixing) or ``error``
    (throttled or unavailable upstream: try again, see ``evidence.retryAfterSeconds``).
    """

    status: str
    message_id: str | None
    message: str
    solutions: tuple[str, ...]
    checks: tuple[Check, ...]
    evidence: Evidence
    tested_at: datetime
    duration_ms: int
    solutions_intro: str | None = None
    cause: str | None = None
    user_role: str | None = None
    user_role_note: str | None = None
    limitations: tuple[str, ...] = ()
    #: App profiles: the ``roles`` of the Graph and SharePoint tokens (keys ``graph``,
    #: ``sharepoint``), in every outcome where tokens were obtained; None on the other paths.
    granted_permissions: Mapping[str, tuple[str, ...]] | None = None
    #: App profiles: the required permissions (``app_permissions.json``) the tokens lack.
    missing_permissions: Mapping[str, tuple[str, ...]] | None = None
    #: App profiles: the certificate that signed (or, failing before a token, the current one).
    certificate: CertificateStatus | None = None
    #: App profiles: the SharePoint URL used (given or discovered), for the service to remember.
    sharepoint_url: str | None = None
    #: App profiles: True when the current certificate signed; False when it was not registered
    #: and the previous one signed during the rotation overlap; None before any sign-in.
    certificate_rotated: bool | None = None
    #: A Conditional Access / MFA block named from the tenant's sign-in log (saved profiles only).
    explanation: Explanation | None = None

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    @property
    def retry_after_seconds(self) -> int | None:
        return self.evidence.retry_after_seconds


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
