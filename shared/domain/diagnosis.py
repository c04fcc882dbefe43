"""Name the policy: explain a Conditional Access, MFA or security-defaults block from the tenant's own
sign-in log, as pure rules.

Spec Messages 1 and 3 say that "access policies" or "conditional access" blocked the account and
list every kind of fix. Entra records each sign-in with the policies applied and their result
(Graph ``signIn.appliedConditionalAccessPolicies``); with the policy's conditions
(``conditionalAccessPolicy``) and the security-defaults switch, this module names each policy that
failed the sign-in, which grant control failed, whether Microsoft manages the policy, and the one
change that would let this account through. The spec's words stay the message; these facts are
the outcome's ``explanation``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

#: Evidence codes an explanation is looked for: Conditional Access (block, compliant or domain-joined
#: device), MFA required or to register, an external MFA control, security defaults.
EXPLAINABLE_CODES = frozenset({"AADSTS53003", "AADSTS53000", "AADSTS53001", "AADSTS50076", "AADSTS50079",
                               "AADSTS50158", "AADSTS530035"})
#: Application permissions (Graph) that let the product read the sign-in log and the policies.
DIAGNOSIS_PERMISSIONS = ("AuditLog.Read.All", "Policy.Read.All")

PENDING, EXPLAINED, UNAVAILABLE = "pending", "explained", "unavailable"
EXPLANATION_STATES = (PENDING, EXPLAINED, UNAVAILABLE)

#: Graph's ``conditionalAccessPolicy.state`` values.
ENABLED, REPORT_ONLY, DISABLED = "enabled", "enabledForReportingButNotEnforced", "disabled"
#: The change kinds an explanation suggests (``suggestedChange.kind``).
EXCLUDE_USER, TRUSTED_LOCATION, EXCLUDE_APP, USE_APP_PROFILE, SECURITY_DEFAULTS = (
    "excludeUser", "trustedLocation", "excludeServicePrincipal", "useAppProfile", "securityDefaults")
CHANGE_KINDS = (EXCLUDE_USER, TRUSTED_LOCATION, EXCLUDE_APP, USE_APP_PROFILE, SECURITY_DEFAULTS)


def needs_explanation(aadsts_code: str | None) -> bool:
    """Whether the sign-in log can name what blocked an outcome with this evidence (a Conditional
    Access block of the legacy sign-in is 53003 too)."""
    return aadsts_code in EXPLAINABLE_CODES


@dataclass(frozen=True)
class AppliedPolicy:
    """``appliedConditionalAccessPolicy`` of one sign-in."""

    id: str
    display_name: str
    result: str  #: success | failure | notApplied | notEnabled | reportOnly... (Graph)
    enforced_grant_controls: tuple[str, ...] = ()


@dataclass(frozen=True)
class SignInEntry:
    """The facts of one Graph ``signIn`` the explanation uses."""

    id: str
    created: datetime
    correlation_id: str | None
    user_principal_name: str | None
    app_id: str | None
    ip_address: str | None
    error_code: int | None
    conditional_access_status: str | None
    policies: tuple[AppliedPolicy, ...] = ()


@dataclass(frozen=True)
class PolicyFacts:
    """What matters of a ``conditionalAccessPolicy``."""

    id: str
    display_name: str
    state: str
    microsoft_managed: bool = False
    built_in_controls: tuple[str, ...] = ()
    excludes_locations: bool = False
    includes_locations: bool = False
    #: The policy targets workload identities (``conditions.clientApplications``), not users.
    workload_identities: bool = False


@dataclass(frozen=True)
class BlockingPolicy:
    id: str
    display_name: str
    state: str
    microsoft_managed: bool
    failed_controls: tuple[str, ...]


@dataclass(frozen=True)
class SuggestedChange:
    kind: str
    text: str
    policy_id: str | None = None


@dataclass(frozen=True)
class Explanation:
    """What the sign-in log says about a failed Validation Test.

    ``pending``: the log entry has not arrived yet (it arrives minutes late); ``explained``: the
    policies are named; ``unavailable``: it cannot be named, and ``reason`` says what would let the
    product do it (a permission, a licence, an app profile) or that the entry never came.
    """

    state: str
    policies: tuple[BlockingPolicy, ...] = ()
    security_defaults: bool | None = None
    suggested_change: SuggestedChange | None = None
    reason: str | None = None
    missing: tuple[str, ...] = ()
    sign_in_id: str | None = None
    at: datetime | None = field(default=None, compare=False)


def pending(at: datetime) -> Explanation:
    return Explanation(PENDING, reason="The tenant's sign-in log records sign-ins minutes late; the policy is "
                                       "named when its entry arrives (event outcome.explained).", at=at)


def unavailable(reason: str, *, missing: tuple[str, ...] = (), at: datetime | None = None) -> Explanation:
    return Explanation(UNAVAILABLE, reason=reason, missing=missing, at=at)


def explain(entry: SignInEntry, policies: dict[str, PolicyFacts], *, security_defaults: bool | None,
            account: str, app_profile: bool, reserved_ip_ranges: tuple[str, ...], at: datetime) -> Explanation:
    """Name each policy that failed ``entry`` and the one change that lets ``account`` through.

    :param policies: the failed policies' facts by id (read from Graph; a missing one is named from
        the sign-in entry alone).
    :param account: the user principal name, or the app's client id for an app profile.
    """
    blocking = []
    for applied in entry.policies:
        if applied.result != "failure":
            continue
        facts = policies.get(applied.id)
        blocking.append(BlockingPolicy(
            id=applied.id, display_name=facts.display_name if facts else applied.display_name,
            state=facts.state if facts else ENABLED, microsoft_managed=bool(facts and facts.microsoft_managed),
            failed_controls=_controls(applied.enforced_grant_controls or (facts.built_in_controls if facts else ()))))
    if blocking:
        first = blocking[0]
        change = _change(first, policies.get(first.id), account=account, app_profile=app_profile,
                         reserved_ip_ranges=reserved_ip_ranges)
        return Explanation(EXPLAINED, tuple(blocking), security_defaults=security_defaults, suggested_change=change,
                           sign_in_id=entry.id, at=at)
    if security_defaults:
        return Explanation(EXPLAINED, (), security_defaults=True, sign_in_id=entry.id, at=at,
                           suggested_change=SuggestedChange(SECURITY_DEFAULTS, (
                               "Security defaults require multi-factor authentication of every user and cannot "
                               "exclude one. Move this profile to an app profile (a workload identity, which "
                               "security defaults do not challenge), or turn security defaults off and use "
                               "Conditional Access policies that exclude the Service Account.")))
    return unavailable("The sign-in log entry names no failed Conditional Access policy and security defaults are "
                       "off: the block comes from per-user multi-factor authentication or the account itself.",
                       at=at)


#: The sign-in log's ``enforcedGrantControls`` ("Mfa", "Block", "RequireCompliantDevice"...) as the
#: policy's ``builtInControls`` names ("mfa", "block", "compliantDevice"...).
_CONTROL_NAMES = {"mfa": "mfa", "block": "block", "requirecompliantdevice": "compliantDevice",
                  "compliantdevice": "compliantDevice", "requiredomainjoineddevice": "domainJoinedDevice",
                  "domainjoineddevice": "domainJoinedDevice", "requireapprovedapp": "approvedApplication",
                  "approvedapplication": "approvedApplication", "passwordchange": "passwordChange"}


def _controls(values) -> tuple[str, ...]:
    return tuple(_CONTROL_NAMES.get(str(v).replace(" ", "").lower(), str(v)) for v in values)


def _change(policy: BlockingPolicy, facts: PolicyFacts | None, *, account: str, app_profile: bool,
            reserved_ip_ranges: tuple[str, ...]) -> SuggestedChange:
    name = policy.display_name
    ranges = ", ".join(reserved_ip_ranges) or "the service's reserved IP addresses"
    location_based = bool(facts and (facts.excludes_locations or facts.includes_locations))
    if "block" in policy.failed_controls and location_based:
        return SuggestedChange(TRUSTED_LOCATION, (
            f"Add the reserved IP addresses ({ranges}) as a trusted named location (Microsoft Entra admin center > "
            f"Conditional Access > Named locations) and exclude that location in the policy '{name}'; sign-ins "
            f"from this service then pass it, and it still blocks every other location."), policy.id)
    if app_profile:
        return SuggestedChange(EXCLUDE_APP, (
            f"Exclude the application {account} from the policy '{name}' (Conditional Access > the policy > "
            f"Assignments > Workload identities > Exclude), or add the reserved IP addresses ({ranges}) as a "
            f"trusted location it excludes."), policy.id)
    managed = (" It is a Microsoft-managed policy: it cannot be deleted, but users can be excluded from it."
               if policy.microsoft_managed else "")
    if "block" in policy.failed_controls:
        return SuggestedChange(EXCLUDE_USER, (
            f"Exclude the Service Account {account} from the policy '{name}' (Conditional Access > the policy > "
            f"Assignments > Users > Exclude).{managed}"), policy.id)
    controls = ", ".join(policy.failed_controls) or "its grant controls"
    return SuggestedChange(EXCLUDE_USER, (
        f"Exclude the Service Account {account} from the policy '{name}' (Conditional Access > the policy > "
        f"Assignments > Users > Exclude): a service account cannot satisfy {controls} without a person.{managed} "
        f"Or move the profile to an app profile: user policies never apply to a workload identity."), policy.id)


EXPLAIN_MESSAGE_VERSION = 1


@dataclass(frozen=True)
class ExplainMessage:
    """The follow-up that looks for a failed test's sign-in log entry (``outcome-explanations``;
    never a secret). ``attempt`` counts the looks; ``tested_at`` bounds the wait; ``traceparent``/
    ``tracestate``: the W3C trace context of the test that asked (optional; absent in version-1
    messages sent before it existed)."""

    tenant_id: str
    profile_id: str
    record_id: str
    correlation_id: str
    tested_at: datetime
    attempt: int = 0
    traceparent: str | None = None
    tracestate: str | None = None

    def to_json(self) -> str:
        import json

        body = {"v": EXPLAIN_MESSAGE_VERSION, "tenantId": self.tenant_id, "profileId": self.profile_id,
                "recordId": self.record_id, "correlationId": self.correlation_id,
                "testedAt": self.tested_at.isoformat(), "attempt": self.attempt}
        if self.traceparent:
            body["traceparent"] = self.traceparent
        if self.tracestate:
            body["tracestate"] = self.tracestate
        return json.dumps(body)

    @classmethod
    def from_json(cls, text: str) -> "ExplainMessage":
        """Raises ``ValueError`` (or ``KeyError``/``TypeError``) for anything else: it goes to poison."""
        import json

        raw = json.loads(text)
        if not isinstance(raw, dict) or raw.get("v") != EXPLAIN_MESSAGE_VERSION:
            raise ValueError("not a version 1 explanation message")
        tested_at = datetime.fromisoformat(str(raw["testedAt"]))
        if tested_at.tzinfo is None:
            raise ValueError("testedAt without a time zone")
        tp, ts = raw.get("traceparent"), raw.get("tracestate")
        return cls(tenant_id=str(raw["tenantId"]), profile_id=str(raw["profileId"]), record_id=str(raw["recordId"]),
                   correlation_id=str(raw.get("correlationId", "")), tested_at=tested_at,
                   attempt=int(raw.get("attempt", 0)), traceparent=tp if isinstance(tp, str) and tp else None,
                   tracestate=ts if isinstance(ts, str) and ts else None)


def next_look(attempt: int, *, first_seconds: int, cap_seconds: int) -> int:
    """Seconds until look ``attempt + 1``: ``first_seconds``, then doubling up to ``cap_seconds``
    (Entra's sign-in log usually has an entry within minutes)."""
    return min(cap_seconds, first_seconds * (2 ** attempt))
