"""The Validation Test (spec step 6), pure logic over the probe port: sign in as the account the way the product
would, say whether it works and what the user's role is, and when it fails which troubleshooting
message applies and what to do.

Paths and the upstream requests one validation sends (the minimum for the path):

* **MFA off — modern sign-in** (common profile): msal username/password grant at Microsoft Entra ID
  (1 request), then Microsoft Graph ``GET /v1.0/me/memberOf`` (1 request per page, following
  ``@odata.nextLink``). Total: **2** for an account with up to one page of memberships. The
  tenant's OpenID configuration and the user realm are fetched once per process (per tenant and
  per user name) and cached by msal; tokens are never cached, so every validation really tests the
  password.
* **MFA on — legacy SharePoint sign-in** with the app password: ``extSTS.srf`` (1), the token
  posted to ``{adminCenterUrl}/_forms/default.aspx?wa=wsignin1.0`` (1), then an authenticated
  ``POST {adminCenterUrl}/_api/contextinfo`` (1). Total: **3**. The user role stays blank (spec).
* **App profile — client credentials** of an Entra app registration whose certificate's key stays in
  Key Vault (:class:`~shared.domain.validation.AppValidationForm`):

  1. the certificate's dates (**0** requests): expired → ``CERTIFICATE_EXPIRED``;
  2. a client-credentials token for Microsoft Graph (``{graph}/.default``): **1** request and **1** Key
     Vault sign operation (the client assertion's signature). AADSTS errors go through the catalog on
     path ``app``; on 700027 (certificate not registered) during a rotation overlap the previous
     certificate signs instead (1 more request and 1 more sign; ``certificateRotated`` false);
  3. only when the SharePoint URL is not known: Graph ``GET /v1.0/sites/root`` (**1** request) gives
     ``https://{siteCollection.hostname}``; a 403 there (no Sites role) leaves the verdict to the
     permission check;
  4. a client-credentials token for SharePoint Online (``{sharepointUrl}/.default``): **1** request
     and **1** sign;
  5. the ``roles`` of both tokens against the workload's required permissions
     (``app_permissions.json``): none at all → ``APP_CONSENT_MISSING`` (with the admin consent link),
     some missing → ``APP_PERMISSION_MISSING`` naming them per resource (0 requests);
  6. SharePoint app-only REST ``GET {sharepointUrl}/_api/web`` (**1** request): 401 "Unsupported app
     only token" → ``APP_ONLY_TOKEN_REFUSED``, 403 → ``APP_PERMISSION_MISSING``;
  7. passed; a certificate that expires within 30 days passes with the ``CERTIFICATE_EXPIRING``
     warning (its message and solutions).

  Total: **3** upstream requests + **2** Key Vault sign operations and **0** Key Vault reads when the
  SharePoint URL is known; **4** requests when it is discovered, which happens once per profile: the
  outcome carries ``sharePointUrl`` and the service remembers it. The tenant's OpenID configuration
  is fetched once per process (cached, as on the modern path). The certificate's key never leaves Key
  Vault and no token is ever kept, logged or put into the outcome. When Key Vault cannot sign, the
  signer's ``DependencyUnavailable`` propagates (as a failed Key Vault read of a password does).
* **Input problems** (e.g. MFA on without a custom admin center URL): **0** requests.

A step answered with 429/503 and ``Retry-After`` ≤ ``max_inline_wait`` seconds is repeated once
after that wait (one extra request); a longer ``Retry-After`` ends the test with ``THROTTLED`` /
``SERVICE_UNAVAILABLE`` (status ``error``) and ``evidence.retryAfterSeconds``, so that a queue
worker can put the message back with that visibility delay instead of waiting here.

The password goes only into the probe's one sign-in request. It is never logged, never part of an
exception text and never in the outcome (texts are scrubbed of it as a last line of defence).
"""
from __future__ import annotations

import contextvars
import logging
import math
import time
from contextlib import contextmanager
from dataclasses import replace
from typing import Callable, Iterator

from shared.domain.app_validation import (RESOURCES, certificate_signal, check_permissions, permission_manifest,
                                          permission_signal)
from shared.domain.certificates import CertificateInfo
from shared.domain.probes import AccountProbe, Grant, ProbeResult
from shared.domain.troubleshooting import Diagnosis, Signal, classify
from shared.domain.validation import (
    APP, FAILED, INPUT, LEGACY, MFA_ROLE_REQUIREMENT, MODERN, OTHER_ROLE, PASSED, SKIPPED,
    USER_ROLE_NOTE_MFA, AppValidationForm, CertificateStatus, Check, Evidence, ValidationForm,
    ValidationOutcome, app_input_problems, input_problems, password_shape, user_role, utc_now)

logger = logging.getLogger(__name__)

#: Overall deadline (seconds) of one Validation Test when its caller opened none
#: (``VALIDATION_DEADLINE_SECONDS``'s default).
DEFAULT_DEADLINE_SECONDS = 25.0
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("validation_deadline", default=None)


@contextmanager
def deadline(seconds: float, *, timer: Callable[[], float] = time.monotonic) -> Iterator[None]:
    """One overall deadline for everything run in this block in this context: every upstream
    request (:class:`~shared.adapters.upstream_http.UpstreamHttp`) and every Azure SDK call on the
    app's transport (Key Vault, the identity) gets at most the time left, and none starts once it
    has passed. A deadline already open and sooner stays (an outer caller's budget wins)."""
    current = _DEADLINE.get()
    end = timer() + seconds
    token = _DEADLINE.set(end if current is None else min(current, end))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def time_left(*, timer: Callable[[], float] = time.monotonic) -> float | None:
    """Seconds left before the open deadline (≤ 0: passed); None when none is open."""
    end = _DEADLINE.get()
    return None if end is None else end - timer()


def _fits(seconds: float) -> bool:
    left = time_left()
    return left is None or left > seconds


#: Longest ``Retry-After`` (seconds) a synchronous Validation Test waits for before one retry.
MAX_INLINE_WAIT = 2.0
_RETRYABLE = (429, 503)
#: Steps after which the credentials are known to be good.
_SIGNED_IN_STEPS = ("memberOf", "contextinfo")


def run_validation_test(form: ValidationForm | AppValidationForm, *, probe: AccountProbe,
                        reserved_ip_ranges: tuple[str, ...], correlation_id: str,
                        clock: Callable = utc_now, timer: Callable[[], float] = time.monotonic,
                        sleep: Callable[[float], None] = time.sleep,
                        max_inline_wait: float = MAX_INLINE_WAIT,
                        deadline_seconds: float = DEFAULT_DEADLINE_SECONDS) -> ValidationOutcome:
    """Run the Validation Test for ``form``.

    :param form: a :class:`ValidationForm` (tenant, username, password — the app password when
        MFA is on —, MFA flag and admin center) or an :class:`AppValidationForm` (tenant, client id,
        certificate and its signer, workload, SharePoint URL, previous certificate).
    :param AccountProbe probe: signs in (``M365AccountProbe`` in production).
    :param reserved_ip_ranges: the service's egress ranges, quoted in access-policy causes.
    :param str correlation_id: sent upstream as ``client-request-id`` and kept in the evidence.
    :param clock: gives ``testedAt`` (timezone-aware).
    :param timer: monotonic seconds, for ``durationMs``.
    :param sleep: waits for a short ``Retry-After``.
    :param float max_inline_wait: longest ``Retry-After`` waited for here (0: never wait, as a
        queue worker that re-queues with the delay would).
    :param float deadline_seconds: the test's overall :func:`deadline` (a sooner one the caller
        opened, e.g. around its Key Vault read, stays); past it the step answers ``TIMEOUT``:
        ``SERVICE_UNAVAILABLE`` with the step reached.
    :return: :class:`ValidationOutcome` with ``status`` ``passed`` | ``failed`` | ``error``,
        ``messageId`` (None when passed), ``message``, ``solutionsIntro``, ``solutions``,
        ``cause``, ``userRole`` (``Global Administrator`` | ``SharePoint Administrator`` |
        ``other``; None for MFA profiles, with ``userRoleNote``; None for app profiles), ``checks``
        (``input``, ``signIn``, ``role``, ``adminCenter``; app profiles: ``signIn``,
        ``permissions``, ``sharePoint``, ``certificate``), ``evidence`` (``aadstsCode``, ``httpStatus``,
        ``correlationId``, ``traceId``, ``retryAfterSeconds``, ``signInPath``, ``step``,
        ``errorCode``, ``upstreamRequests``), ``limitations``, ``testedAt``, ``durationMs``; app
        profiles also ``grantedPermissions``/``missingPermissions`` (``graph``, ``sharepoint``:
        whenever a token was obtained), ``certificate`` (the one that signed: thumbprint, dates,
        days left), ``sharePointUrl`` (used or discovered) and ``certificateRotated``. An app
        profile's passed test may carry ``messageId`` ``CERTIFICATE_EXPIRING`` (a warning).
    """
    kind = _AppRun if isinstance(form, AppValidationForm) else _Run
    run = kind(form, probe, reserved_ip_ranges, correlation_id, clock(), timer, sleep, max_inline_wait)
    with deadline(deadline_seconds):
        outcome = run.execute()
    logger.info("validation test %s", outcome.status, extra={
        "correlation_id": correlation_id, "tenant_id": form.tenant_id, "status": outcome.status,
        "message_id": outcome.message_id, "sign_in_path": outcome.evidence.sign_in_path,
        "aadsts_code": outcome.evidence.aadsts_code, "http_status": outcome.evidence.http_status,
        "upstream_requests": outcome.evidence.upstream_requests, "duration_ms": outcome.duration_ms})
    return outcome


class _Run:
    """One validation: the steps of its path, the requests they cost, the outcome."""

    def __init__(self, form, probe, reserved_ip_ranges, correlation_id, tested_at, timer, sleep,
                 max_inline_wait):
        self.form, self.probe = form, probe
        self.reserved = ", ".join(reserved_ip_ranges) or "(none configured)"
        self.correlation_id, self.tested_at = correlation_id, tested_at
        self.timer, self.sleep, self.max_inline_wait = timer, sleep, max_inline_wait
        self.started = timer()
        self.requests = 0
        self.path = INPUT

    # --- steps -------------------------------------------------------------------------------

    def execute(self) -> ValidationOutcome:
        code, problems = input_problems(self.form)
        if code:
            return self._failure(Signal(code, path=INPUT, mfa_enabled=self.form.mfa_enabled),
                                 ProbeResult(ok=False, error_code=code, error_description="; ".join(problems)))
        self.path = self.form.sign_in_path
        return self._legacy() if self.form.mfa_enabled else self._modern()

    def _modern(self) -> ValidationOutcome:
        f = self.form
        signed_in = self._step(lambda: self.probe.sign_in_modern(
            f.tenant_id, f.username, f.password, correlation_id=self.correlation_id))
        if not signed_in.ok:
            return self._failure(self._signal(signed_in), signed_in)
        roles = self._step(lambda: self.probe.get_roles(_grant(signed_in), correlation_id=self.correlation_id))
        if not roles.ok:
            return self._failure(self._signal(roles), roles)
        role = user_role(roles.role_template_ids)
        if role == OTHER_ROLE:
            insufficient = replace(roles, ok=False, error_code="ROLE_INSUFFICIENT", grant=None)
            return self._failure(self._signal(insufficient), insufficient, user_role=OTHER_ROLE)
        checks = (Check("signIn", PASSED, "Signed in with modern authentication (Microsoft Entra ID)."),
                  Check("role", PASSED, role),
                  Check("adminCenter", SKIPPED, "Checked only for MFA profiles, which sign in through "
                                                "the SharePoint Online admin center."))
        return self._passed(roles, checks, user_role=role)

    def _legacy(self) -> ValidationOutcome:
        f, url = self.form, self.form.admin_center_url or ""
        signed_in = self._step(lambda: self.probe.sign_in_legacy(
            f.username, f.password, url, correlation_id=self.correlation_id))
        if not signed_in.ok:
            return self._failure(self._signal(signed_in), signed_in)
        reached = self._step(lambda: self.probe.check_admin_center(
            _grant(signed_in), url, correlation_id=self.correlation_id))
        if not reached.ok:
            return self._failure(self._signal(reached), reached)
        checks = (Check("signIn", PASSED, "Signed in with the app password through SharePoint Online's "
                                          "legacy sign-in."),
                  Check("role", SKIPPED, f"{USER_ROLE_NOTE_MFA} {MFA_ROLE_REQUIREMENT}"),
                  Check("adminCenter", PASSED, f"{url} answered as the SharePoint Online admin center."))
        return self._passed(reached, checks, user_role=None)

    def _step(self, call: Callable[[], ProbeResult]) -> ProbeResult:
        """Run one probe step; repeat it once after a short ``Retry-After``."""
        result = call()
        self.requests += result.requests
        wait = result.retry_after
        if (not result.ok and result.http_status in _RETRYABLE and wait is not None
                and 0 <= wait <= self.max_inline_wait and _fits(wait + 1)):
            logger.info("upstream %s answered %s; retrying once after %.1f s", result.step,
                        result.http_status, wait, extra={"correlation_id": self.correlation_id})
            self.sleep(wait)
            result = call()
            self.requests += result.requests
        return result

    # --- outcomes ----------------------------------------------------------------------------

    def _signal(self, result: ProbeResult) -> Signal:
        return Signal(code=result.error_code, http_status=result.http_status, path=self.path,
                      mfa_enabled=self.form.mfa_enabled, step=result.step,
                      password_shape=password_shape(self.form.password),
                      ca_challenge=result.ca_challenge)

    def _evidence(self, result: ProbeResult) -> Evidence:
        code = result.error_code
        return Evidence(
            sign_in_path=self.path,
            aadsts_code=code if code and code.startswith("AADSTS") else None,
            http_status=result.http_status,
            correlation_id=result.correlation_id or self.correlation_id,
            trace_id=result.trace_id,
            retry_after_seconds=math.ceil(result.retry_after) if result.retry_after is not None else None,
            step=result.step,
            error_code=code,
            upstream_requests=self.requests)

    def _duration_ms(self) -> int:
        return max(0, round((self.timer() - self.started) * 1000))

    def _passed(self, result: ProbeResult, checks: tuple[Check, ...], *, user_role: str | None) -> ValidationOutcome:
        evidence = replace(self._evidence(result), http_status=None, error_code=None, step=None)
        return ValidationOutcome(
            status=PASSED, message_id=None,
            message="The validation test passed.",
            solutions=(), checks=checks, evidence=evidence, tested_at=self.tested_at,
            duration_ms=self._duration_ms(), user_role=user_role,
            user_role_note=USER_ROLE_NOTE_MFA if self.form.mfa_enabled else None)

    def _failure(self, signal: Signal, result: ProbeResult, *, user_role: str | None = None) -> ValidationOutcome:
        evidence = self._evidence(result)
        params = {
            "reservedIpRanges": self.reserved, "retryAfterSeconds": evidence.retry_after_seconds,
            "description": result.error_description or "no description",
            "step": _STEP_NAMES.get(result.step or "", result.step or "Microsoft 365"),
            "roles": ", ".join(result.role_names) or "none",
            "adminCenterUrl": self.form.admin_center_url or "The admin center URL",
            "tenantId": self.form.tenant_id, "correlationId": evidence.correlation_id,
        }
        diagnosis = _scrub(classify(signal, params=params), self.form.password.reveal())
        return ValidationOutcome(
            status=diagnosis.status, message_id=diagnosis.message_id, message=diagnosis.message,
            solutions_intro=diagnosis.solutions_intro, solutions=diagnosis.solutions,
            cause=diagnosis.cause, checks=_failure_checks(signal, diagnosis, self.form.mfa_enabled),
            evidence=evidence, tested_at=self.tested_at, duration_ms=self._duration_ms(),
            user_role=user_role if not self.form.mfa_enabled else None,
            user_role_note=USER_ROLE_NOTE_MFA if self.form.mfa_enabled else None,
            limitations=diagnosis.limitations)


_STEP_NAMES = {
    "discovery": "Microsoft Entra ID (tenant discovery)", "token": "Microsoft Entra ID (sign-in)",
    "memberOf": "Microsoft Graph (/me/memberOf)", "sts": "SharePoint's legacy security token service",
    "wsignin": "The SharePoint Online admin center sign-in", "contextinfo": "The SharePoint Online admin center",
    "graphToken": "Microsoft Entra ID (the application's sign-in for Microsoft Graph)",
    "sitesRoot": "Microsoft Graph (/v1.0/sites/root)",
    "sharePointToken": "Microsoft Entra ID (the application's sign-in for SharePoint Online)",
    "appOnlyWeb": "SharePoint Online (app-only /_api/web)",
}


def _grant(result: ProbeResult) -> Grant:
    if result.grant is None:
        raise RuntimeError(f"probe step {result.step} succeeded without a grant (adapter bug)")
    return result.grant


def _failure_checks(signal: Signal, diagnosis: Diagnosis, mfa_enabled: bool) -> tuple[Check, ...]:
    """Which check failed, from the step that failed and what it meant."""
    detail = diagnosis.cause or diagnosis.message
    role_skipped = Check("role", SKIPPED, USER_ROLE_NOTE_MFA if mfa_enabled else "Not reached.")
    if signal.path == INPUT:
        return (Check("input", FAILED, detail), Check("signIn", SKIPPED, "Not reached."),
                role_skipped, Check("adminCenter", SKIPPED, "Not reached."))
    signed_in = signal.step in _SIGNED_IN_STEPS or (
        signal.step == "wsignin" and diagnosis.message_id == "ADMIN_CENTER_UNREACHABLE")
    if signal.step == "memberOf" or signal.code == "ROLE_INSUFFICIENT":
        return (Check("signIn", PASSED, "Signed in with modern authentication (Microsoft Entra ID)."),
                Check("role", FAILED, detail), Check("adminCenter", SKIPPED, "Not checked."))
    if signal.step == "adminCenter":
        return (Check("signIn", SKIPPED, "Not attempted."), role_skipped,
                Check("adminCenter", FAILED, detail))
    if signed_in:
        return (Check("signIn", PASSED, "Microsoft Entra ID accepted the app password."), role_skipped,
                Check("adminCenter", FAILED, detail))
    return (Check("signIn", FAILED, detail), role_skipped,
            Check("adminCenter", SKIPPED, "Not reached."))


def _scrub(diagnosis: Diagnosis, secret: str) -> Diagnosis:
    """Last line of defence: no outcome text may contain the password."""
    if len(secret) < 4:
        return diagnosis

    def clean(text):
        return text.replace(secret, "***") if text else text

    return replace(diagnosis, message=clean(diagnosis.message), cause=clean(diagnosis.cause),
                   solutions_intro=clean(diagnosis.solutions_intro),
                   solutions=tuple(clean(s) for s in diagnosis.solutions))


# --- app profiles ------------------------------------------------------------------------------

_RESOURCE_NAMES = {"graph": "Microsoft Graph", "sharepoint": "SharePoint"}
#: The consent link when the service gave none (the catalog's text before app profiles had one).
_CONSENT_LINK = "https://login.microsoftonline.com/{tenant}/adminconsent?client_id={client}"
_NOT_REACHED = "Not reached."


def _per_resource(permissions: dict[str, tuple[str, ...]] | None) -> str:
    """``Microsoft Graph: A, B; SharePoint: C`` (resources without any left out), or ``none``."""
    parts = [f"{_RESOURCE_NAMES[r]}: {', '.join(permissions[r])}" for r in RESOURCES if permissions and permissions.get(r)]
    return "; ".join(parts) or "none"


def _certificate_status(certificate: CertificateInfo, now) -> CertificateStatus:
    return CertificateStatus(thumbprint=certificate.thumbprint, not_before=certificate.not_before,
                             not_after=certificate.not_after, days_left=certificate.days_left(now))


def _dates(certificate: CertificateInfo, now) -> str:
    days = certificate.days_left(now)
    left = f"{days} days left" if days >= 0 else f"expired {-days} days ago"
    return (f"thumbprint {certificate.thumbprint.upper()}, notAfter "
            f"{certificate.not_after.isoformat(timespec='seconds').replace('+00:00', 'Z')}, {left}")


class _AppRun(_Run):
    """The Validation Test of an app profile (see the module docstring for its steps and costs)."""

    form: AppValidationForm

    def __init__(self, *args):
        super().__init__(*args)
        self.certificate = self.form.certificate
        self.rotated: bool | None = None
        self.granted: dict[str, tuple[str, ...]] | None = None
        self.missing: dict[str, tuple[str, ...]] | None = None
        self.limitations: tuple[str, ...] = ()
        url = self.form.sharepoint_url
        self.sharepoint_url = url.rstrip("/") if url else None

    def execute(self) -> ValidationOutcome:
        f, cid = self.form, self.correlation_id
        problems = app_input_problems(f, tuple(permission_manifest()["workloads"]))
        if problems:
            return self._failure(Signal("INPUT_INVALID", path=INPUT), ProbeResult(
                ok=False, error_code="INPUT_INVALID", error_description="; ".join(problems)))
        self.path = APP
        if certificate_signal(f.certificate, self.tested_at) == "CERT_EXPIRED":
            expired = ProbeResult(ok=False, error_code="CERT_EXPIRED", step="certificate",
                                  error_description=_dates(f.certificate, self.tested_at))
            return self._failure(self._signal(expired), expired)
        graph = self._token(self.certificate, self.probe.graph_scope, "graphToken")
        previous = f.previous_certificate
        if (not graph.ok and graph.error_code == "AADSTS700027" and previous is not None
                and certificate_signal(previous, self.tested_at) != "CERT_EXPIRED"):
            logger.info("the current certificate is not registered on the application; the previous one signs "
                        "(rotation overlap)", extra={"correlation_id": cid, "tenant_id": f.tenant_id})
            retried = self._token(previous, self.probe.graph_scope, "graphToken")
            if retried.ok or retried.error_code != "AADSTS700027":  # else: the current one's 700027 stands
                graph, self.certificate = retried, previous
        if not graph.ok:
            return self._failure(self._signal(graph), graph)
        self.rotated = self.certificate is f.certificate
        self.granted = {"graph": tuple(graph.role_names), "sharepoint": ()}

        if self.sharepoint_url is None:
            root = self._step(lambda: self.probe.sharepoint_root(_grant(graph), correlation_id=cid))
            if root.ok and root.url:
                self.sharepoint_url = root.url.rstrip("/")
            elif root.ok:
                return self._failure(*self._with_signal(replace(
                    root, ok=False, error_code="PROBE_FAILURE",
                    error_description="Graph gave no siteCollection.hostname for the root site")))
            elif root.error_code == "GRAPH_FORBIDDEN":
                # No Sites role in the Graph token: the permissions decide (SharePoint's are unknown).
                check = check_permissions(f.workload, {"graph": graph.role_names})
                self.missing = {"graph": check.missing["graph"], "sharepoint": ()}
                code = "APP_NO_ROLES" if check.nothing_granted else root.error_code
                return self._failure(*self._with_signal(replace(root, error_code=code)))
            else:
                return self._failure(*self._with_signal(root))

        url = self.sharepoint_url
        sharepoint = self._token(self.certificate, f"{url}/.default", "sharePointToken")
        if not sharepoint.ok:
            check = check_permissions(f.workload, {"graph": graph.role_names})
            self.missing = {"graph": check.missing["graph"], "sharepoint": ()}
            return self._failure(self._signal(sharepoint), sharepoint)
        check = check_permissions(f.workload, {"graph": graph.role_names, "sharepoint": sharepoint.role_names})
        self.granted, self.missing = dict(check.granted), dict(check.missing)
        self.limitations = check.limitations
        signal_code = permission_signal(check)
        if signal_code:
            result = ProbeResult(ok=False, error_code=signal_code, step="permissions",
                                 correlation_id=sharepoint.correlation_id, trace_id=sharepoint.trace_id,
                                 error_description=f"missing: {_per_resource(self.missing)}")
            return self._failure(self._signal(result), result)

        web = self._step(lambda: self.probe.check_sharepoint_app_only(
            _grant(sharepoint), url, correlation_id=cid))
        if not web.ok:
            return self._failure(self._signal(web), web)
        return self._app_passed(web)

    def _token(self, certificate: CertificateInfo, scope: str, step: str) -> ProbeResult:
        f = self.form
        return self._step(lambda: self.probe.app_token(f.tenant_id, f.client_id, certificate, f.sign, scope=scope,
                                                       correlation_id=self.correlation_id, step=step))

    def _with_signal(self, result: ProbeResult) -> tuple[Signal, ProbeResult]:
        return self._signal(result), result

    # --- outcomes ----------------------------------------------------------------------------

    def _signal(self, result: ProbeResult) -> Signal:
        return Signal(code=result.error_code, http_status=result.http_status, path=self.path, step=result.step,
                      ca_challenge=result.ca_challenge)

    def _app_fields(self) -> dict:
        return dict(granted_permissions=self.granted, missing_permissions=self.missing,
                    certificate=_certificate_status(self.certificate, self.tested_at),
                    sharepoint_url=self.sharepoint_url, certificate_rotated=self.rotated)

    def _params(self, result: ProbeResult, evidence: Evidence) -> dict:
        f = self.form
        consent = f.admin_consent_url or _CONSENT_LINK.format(tenant=f.tenant_id, client=f.client_id)
        return {
            "reservedIpRanges": self.reserved, "retryAfterSeconds": evidence.retry_after_seconds,
            "description": result.error_description or "no description",
            "step": _STEP_NAMES.get(result.step or "", result.step or "Microsoft 365"),
            "roles": _per_resource(self.granted), "missingPermissions": _per_resource(self.missing),
            "adminConsentUrl": consent, "sharepointUrl": self.sharepoint_url or "The SharePoint Online URL",
            "adminCenterUrl": self.sharepoint_url or "The SharePoint Online URL",
            "tenantId": f.tenant_id, "correlationId": evidence.correlation_id,
        }

    def _failure(self, signal: Signal, result: ProbeResult, *, user_role: str | None = None) -> ValidationOutcome:
        evidence = self._evidence(result)
        diagnosis = classify(signal, params=self._params(result, evidence))
        return ValidationOutcome(
            status=diagnosis.status, message_id=diagnosis.message_id, message=diagnosis.message,
            solutions_intro=diagnosis.solutions_intro, solutions=diagnosis.solutions, cause=diagnosis.cause,
            checks=self._failure_checks(signal, diagnosis), evidence=evidence, tested_at=self.tested_at,
            duration_ms=self._duration_ms(), user_role=None, limitations=diagnosis.limitations,
            **self._app_fields())

    def _app_passed(self, result: ProbeResult) -> ValidationOutcome:
        evidence = replace(self._evidence(result), http_status=None, error_code=None, step=None)
        checks = (Check("signIn", PASSED, self._signed_in_detail()),
                  Check("permissions", PASSED, f"Granted: {_per_resource(self.granted)}."),
                  Check("sharePoint", PASSED, f"{self.sharepoint_url} answered the application's app-only request."),
                  Check("certificate", PASSED, self._certificate_detail()))
        fields = dict(status=PASSED, message_id=None, message="The validation test passed.", solutions=(),
                      checks=checks, evidence=evidence, tested_at=self.tested_at, duration_ms=self._duration_ms(),
                      user_role=None, limitations=self.limitations, **self._app_fields())
        if certificate_signal(self.certificate, self.tested_at) == "CERT_EXPIRING":
            warning = ProbeResult(ok=False, error_code="CERT_EXPIRING", step="certificate",
                                  error_description=_dates(self.certificate, self.tested_at))
            diagnosis = classify(self._signal(warning), params=self._params(warning, evidence))
            fields.update(status=diagnosis.status, message_id=diagnosis.message_id, message=diagnosis.message,
                          solutions_intro=diagnosis.solutions_intro, solutions=diagnosis.solutions,
                          cause=diagnosis.cause)
        return ValidationOutcome(**fields)

    def _signed_in_detail(self) -> str:
        if self.rotated is False:
            return ("Signed in as the application with its previous certificate: the current certificate is not "
                    "registered on the application yet (rotation overlap).")
        return ("Signed in as the application with its certificate (client credentials for Microsoft Graph and "
                "SharePoint Online; the key stayed in Key Vault).")

    def _certificate_detail(self) -> str:
        detail = _dates(self.certificate, self.tested_at)
        if certificate_signal(self.certificate, self.tested_at) == "CERT_EXPIRING":
            return f"Valid, but it expires soon: {detail}."
        return f"Valid: {detail}."

    def _failure_checks(self, signal: Signal, diagnosis: Diagnosis) -> tuple[Check, ...]:
        detail = diagnosis.cause or diagnosis.message
        step, mid = signal.step, diagnosis.message_id
        if signal.path == INPUT:
            return (Check("input", FAILED, detail), Check("signIn", SKIPPED, _NOT_REACHED),
                    Check("permissions", SKIPPED, _NOT_REACHED), Check("sharePoint", SKIPPED, _NOT_REACHED),
                    Check("certificate", SKIPPED, _NOT_REACHED))
        if step == "certificate":
            return (Check("signIn", SKIPPED, "Not attempted."), Check("permissions", SKIPPED, _NOT_REACHED),
                    Check("sharePoint", SKIPPED, _NOT_REACHED), Check("certificate", FAILED, detail))
        certificate = (Check("certificate", FAILED, detail) if mid == "CERTIFICATE_NOT_REGISTERED"
                       else Check("certificate", PASSED, self._certificate_detail()))
        permission_failed = mid in ("APP_CONSENT_MISSING", "APP_PERMISSION_MISSING")
        if step in ("graphToken", "sharePointToken"):  # Entra refused the token (65001: no consent)
            return (Check("signIn", FAILED, detail),
                    Check("permissions", FAILED, detail) if permission_failed else Check("permissions", SKIPPED,
                                                                                         _NOT_REACHED),
                    Check("sharePoint", SKIPPED, _NOT_REACHED), certificate)
        signed_in = Check("signIn", PASSED, self._signed_in_detail())
        if step == "appOnlyWeb" and not permission_failed:
            return (signed_in, Check("permissions", PASSED, f"Granted: {_per_resource(self.granted)}."),
                    Check("sharePoint", FAILED, detail), certificate)
        if permission_failed:
            return (signed_in, Check("permissions", FAILED, detail),
                    Check("sharePoint", FAILED if step == "appOnlyWeb" else SKIPPED,
                          detail if step == "appOnlyWeb" else _NOT_REACHED), certificate)
        # sitesRoot answered something else (throttled, unavailable ...)
        return (signed_in, Check("permissions", SKIPPED, _NOT_REACHED), Check("sharePoint", FAILED, detail),
                certificate)
