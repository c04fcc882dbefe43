"""The Validation Test's outcome on the wire, and a profile's validation history."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from pydantic import Field, SerializationInfo, SerializerFunctionWrapHandler, field_serializer, model_serializer

from shared.contract.base import ResponseModel, literal_of
from shared.contract.profiles import LimitationId
from shared.domain.troubleshooting import load_catalog
from shared.domain import validation as domain
from shared.domain.diagnosis import CHANGE_KINDS, EXPLANATION_STATES
from shared.domain.validation import (CHECK_NAMES, CHECK_STATUSES, GLOBAL_ADMINISTRATOR, OTHER_ROLE, OUTCOME_STATUSES,
                                      SHAREPOINT_ADMINISTRATOR, SIGN_IN_PATHS)

#: Every message id of the troubleshooting catalog (``troubleshooting.json``).
MessageId = literal_of(load_catalog().messages)
OutcomeStatus = literal_of(OUTCOME_STATUSES)
UserRole = literal_of((GLOBAL_ADMINISTRATOR, SHAREPOINT_ADMINISTRATOR, OTHER_ROLE))


class Check(ResponseModel):
    name: literal_of(CHECK_NAMES)  # type: ignore[valid-type]
    status: literal_of(CHECK_STATUSES)  # type: ignore[valid-type]
    detail: str


class Evidence(ResponseModel):
    """What the upstream said, for support (never a secret or a token)."""

    aadsts_code: Optional[str]
    http_status: Optional[int]
    correlation_id: Optional[str]
    trace_id: Optional[str]
    retry_after_seconds: Optional[int]
    sign_in_path: literal_of(SIGN_IN_PATHS)  # type: ignore[valid-type]
    step: Optional[str]
    error_code: Optional[str]
    upstream_requests: int


class Permissions(ResponseModel):
    """Application permissions (the tokens' ``roles``) per resource."""

    graph: list[str]
    sharepoint: list[str]


class CertificateStatus(ResponseModel):
    """The app profile's certificate that signed the test (public facts only, never the key)."""

    thumbprint: str = Field(description="SHA-1, hex (as the Microsoft Entra admin center shows it)")
    not_before: datetime
    not_after: datetime
    days_left: int = Field(description="Whole days until notAfter (negative: expired)")

    @field_serializer("not_before", "not_after")
    def _utc_seconds(self, value: datetime) -> str:
        return value.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class BlockingPolicyOut(ResponseModel):
    """A Conditional Access policy that failed the sign-in (Graph ``conditionalAccessPolicy``)."""

    id: str
    display_name: str
    state: str = Field(description="enabled | enabledForReportingButNotEnforced | disabled (Graph)")
    microsoft_managed: bool = Field(description="Created and switched on by Microsoft, not by the tenant")
    failed_controls: list[str] = Field(description="The grant controls that failed: block, mfa, compliantDevice...")


class SuggestedChangeOut(ResponseModel):
    kind: literal_of(CHANGE_KINDS)  # type: ignore[valid-type]
    text: str
    policy_id: Optional[str]


class ExplanationOut(ResponseModel):
    """The policy that blocked the sign-in, named from the tenant's sign-in log: ``pending`` until
    the log entry arrives (event ``outcome.explained``), then ``explained`` or ``unavailable`` with
    the reason (a permission or licence the product lacks, or an entry that never came)."""

    state: literal_of(EXPLANATION_STATES)  # type: ignore[valid-type]
    policies: list[BlockingPolicyOut]
    security_defaults: Optional[bool]
    suggested_change: Optional[SuggestedChangeOut]
    reason: Optional[str]
    missing: list[str] = Field(description="Permissions or licences that would let the product name the policy")
    sign_in_id: Optional[str]


class ValidationOutcome(ResponseModel):
    """``passed``, ``failed`` (the account or its settings need fixing) or ``error`` (throttled or
    unavailable upstream: try again after ``evidence.retryAfterSeconds``)."""

    status: OutcomeStatus  # type: ignore[valid-type]
    message_id: Optional[MessageId]  # type: ignore[valid-type]
    message: str
    solutions_intro: Optional[str]
    solutions: list[str]
    cause: Optional[str]
    user_role: Optional[UserRole] = Field(description="Blank (null) for MFA profiles: see userRoleNote")  # type: ignore[valid-type]
    user_role_note: Optional[str]
    checks: list[Check]
    evidence: Evidence
    limitations: list[LimitationId]  # type: ignore[valid-type]
    tested_at: datetime
    duration_ms: int
    # App profiles: the five appear together on an app profile's outcome (each may be null there) and
    # are left out of the other paths' outcomes (and of records stored before app profiles existed).
    granted_permissions: Optional[Permissions] = Field(
        default=None, description="App profiles: the roles of the Microsoft Graph and SharePoint tokens, whenever a "
                                  "token was obtained")
    missing_permissions: Optional[Permissions] = Field(
        default=None, description="App profiles: the required application permissions the tokens lack")
    certificate: Optional[CertificateStatus] = Field(
        default=None, description="App profiles: the certificate that signed (during a rotation overlap, the previous "
                                  "one)")
    sharepoint_url: Optional[str] = Field(
        default=None, alias="sharePointUrl",
        description="App profiles: the SharePoint Online URL used, given or discovered with Graph /v1.0/sites/root")
    certificate_rotated: Optional[bool] = Field(
        default=None, description="App profiles: true when the current certificate signed; false when it is not "
                                  "registered yet and the previous one signed")
    explanation: Optional[ExplanationOut] = Field(
        default=None, description="Saved profiles blocked by Conditional Access, MFA or security defaults: the "
                                  "blocking policy named from the tenant's sign-in log (absent otherwise)")

    @field_serializer("tested_at")
    def _utc_millis(self, value: datetime) -> str:
        return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    # No return annotation: with one, pydantic would take it as the serialization JSON Schema.
    @model_serializer(mode="wrap")
    def _app_fields_together(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo):
        data = handler(self)
        if all(getattr(self, name) is None for name in APP_FIELDS):
            for name in APP_FIELDS:
                data.pop(type(self).model_fields[name].alias if info.by_alias else name, None)
        if self.explanation is None:
            data.pop("explanation", None)
        return data


#: The outcome's fields that only app profiles' tests fill.
APP_FIELDS = ("granted_permissions", "missing_permissions", "certificate", "sharepoint_url", "certificate_rotated")


class ValidationResult(ValidationOutcome):
    """The outcome of a saved profile's test, stored under ``recordId`` and published."""

    record_id: str


class ValidationRecord(ValidationOutcome):
    record_id: str
    at: datetime
    reason: str = Field(description="manual | batch | scheduled | webhook")
    job_id: Optional[str]
    correlation_id: str


class ValidationHistory(ResponseModel):
    items: list[ValidationRecord] = Field(description="Newest first")


def outcome_out(outcome: domain.ValidationOutcome) -> ValidationOutcome:
    """The one mapping from the domain outcome to its wire (and stored, and published) shape."""
    return ValidationOutcome.model_validate(outcome, from_attributes=True)


def outcome_json(outcome: domain.ValidationOutcome) -> dict[str, Any]:
    return outcome_out(outcome).dump()
