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

from shared.domain.probes import AccountProbe, Grant, ProbeResult
from shared.domain.troubleshooting import Diagnosis, Signal, classify
from shared.domain.validation import (
    FAILED, INPUT, LEGACY, MFA_ROLE_REQUIREMENT, MODERN, OTHER_ROLE, PASSED, SKIPPED,
    USER_ROLE_NOTE_MFA, Check, Evidence, ValidationForm, ValidationOutcome, input_problems,
    password_shape, user_role, utc_now)

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


def run_validation_test(form: ValidationForm, *, probe: AccountProbe,
                        reserved_ip_ranges: tuple[str, ...], correlation_id: str,
                        clock: Callable = utc_now, timer: Callable[[], float] = time.monotonic,
                        sleep: Callable[[float], None] = time.sleep,
                        max_inline_wait: float = MAX_INLINE_WAIT,
                        deadline_seconds: float = DEFAULT_DEADLINE_SECONDS) -> ValidationOutcome:
    """Run the Validation Test for ``form``.

    :param ValidationForm form: tenant, username, password (app password when MFA is on), MFA
        flag and admin center.
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
        ``other``; None for MFA profiles, with ``userRoleNote``), ``checks`` (``input``,
        ``signIn``, ``role``, ``adminCenter``), ``evidence`` (``aadstsCode``, ``httpStatus``,
        ``correlationId``, ``traceId``, ``retryAfterSeconds``, ``signInPath``, ``step``,
        ``errorCode``, ``upstreamRequests``), ``limitations``, ``testedAt``, ``durationMs``.
    """
    run = _Run(form, probe, reserved_ip_ranges, correlation_id, clock(), timer, sleep, max_inline_wait)
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
