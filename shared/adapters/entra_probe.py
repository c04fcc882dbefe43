"""The Validation Test's sign-ins against Microsoft 365: :class:`M365AccountProbe`.

* **Modern sign-in** (MFA off): msal's ``PublicClientApplication`` (``settings.m365_client_id``,
  authority ``https://{login_host}/{tenant}``, no instance discovery) and
  ``acquire_token_by_username_password`` for Microsoft Graph; then ``GET /v1.0/me/memberOf`` (every
  page) for the directory roles.
* **Legacy SharePoint sign-in** (MFA on): :mod:`shared.adapters.sharepoint_legacy_probe`.

Requests, caching and secrets:

* One msal app per (authority, client id) for the whole process, so the tenant's OpenID
  configuration is fetched once, and msal's 24 h cache of successful discovery GETs keeps the user
  realm of each user name. Tokens are never cached (:class:`_NoTokenCache`), and msal's cache of
  failed token POSTs (HTTP 400 for 60 s, 429/5xx for Retry-After) is switched off
  (:class:`_DiscoveryOnlyCache`): every validation reaches Microsoft Entra ID with the password.
* Every request has ``settings.upstream_timeout``, sends the validation's correlation id as
  ``client-request-id``, does not follow redirects and runs on a cookie-less view of the shared
  session: no cookie (Entra's, SharePoint's FedAuth) outlives one request, so one validation never
  signs in with another's session.
* The password goes only into the token request (or the STS envelope). Errors are data
  (:class:`~shared.domain.probes.ProbeResult`); the texts kept are Entra's first line (AADSTS
  code and text), never a request body.
"""
from __future__ import annotations

import contextvars
import heapq
import http.cookiejar
import json
import logging
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Iterator, Mapping
from urllib.parse import urlsplit

import msal
import requests

from shared.adapters.sharepoint_legacy_probe import SharePointLegacySignIn
from shared.cloud import CloudEndpoints, endpoints_for
from shared.config import Settings
from shared.domain.probes import (
    CONNECTION_ERROR, DNS_FAILURE, TIMEOUT, TLS_ERROR, AccountProbe, Grant, ProbeResult)
from shared.domain.profile import Password

logger = logging.getLogger(__name__)

_AADSTS = re.compile(r"\bAADSTS(\d{5,7})\b")
_DIRECTORY_ROLE = "#microsoft.graph.directoryRole"
_MAX_MEMBER_OF_PAGES = 50
_BODY_KEPT = 8192


# --- one probe step's HTTP record ---------------------------------------------------------------

@dataclass
class Exchange:
    """The requests of one probe step: how many, and what the last answer was."""

    http: "UpstreamHttp"
    correlation_id: str
    requests: int = 0
    step: str | None = None
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    error_body: str | None = None

    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("Retry-After")) if self.status else None

    def trace_id(self) -> str | None:
        h = self.headers
        return h.get("x-ms-request-id") or h.get("SPRequestGuid") or h.get("request-id")

    def ok(self, **kw: Any) -> ProbeResult:
        return ProbeResult(ok=True, step=self.step, requests=self.requests,
                           correlation_id=self.correlation_id, trace_id=self.trace_id(), **kw)

    def failed(self, code: str | None = None, description: str | None = None, **kw: Any) -> ProbeResult:
        """A failed step, with the last answer's status, Retry-After and trace id."""
        values = dict(error_code=code, error_description=description, http_status=self.status,
                      retry_after=self.retry_after(), step=self.step, requests=self.requests,
                      correlation_id=self.correlation_id, trace_id=self.trace_id())
        values.update(kw)
        return ProbeResult(ok=False, **values)

    def from_exception(self, exc: BaseException) -> ProbeResult:
        """No usable answer: a transport problem, or an answer the client library refused."""
        if isinstance(exc, requests.Timeout):
            return self.failed(TIMEOUT, "no answer within the timeout", http_status=None, retry_after=None)
        if isinstance(exc, requests.exceptions.SSLError):
            return self.failed(TLS_ERROR, "the TLS handshake failed", http_status=None, retry_after=None)
        if isinstance(exc, requests.ConnectionError):
            dns = "NameResolutionError" in repr(exc) or "Name or service not known" in repr(exc)
            return self.failed(DNS_FAILURE if dns else CONNECTION_ERROR,
                               "the host name does not resolve" if dns else "the connection failed",
                               http_status=None, retry_after=None)
        if self.status is not None and self.status >= 400 and self.error_body:
            entra = _entra_error_fields(_json_or_none(self.error_body) or {})
            if entra.get("error_code"):
                return self.failed(**entra)
        if self.status is not None and (self.status == 429 or self.status >= 500):
            return self.failed(None, f"HTTP {self.status}")
        logger.warning("probe step %s failed unexpectedly: %s", self.step, type(exc).__name__,
                       extra={"correlation_id": self.correlation_id})
        return self.failed("PROBE_FAILURE", f"{type(exc).__name__} (HTTP {self.status})")


_CURRENT: contextvars.ContextVar[Exchange | None] = contextvars.ContextVar("m365_probe_exchange", default=None)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date); None when absent/odd."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def _json_or_none(text: str | None) -> dict | None:
    try:
        value = json.loads(text or "")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _step_of(url: str) -> str:
    path = urlsplit(url).path.lower()
    if path.endswith("/token"):
        return "token"
    if "openid-configuration" in path or "/userrealm/" in path or path.endswith("/keys"):
        return "discovery"
    if path.endswith("/extsts.srf"):
        return "sts"
    if path.endswith("/_forms/default.aspx"):
        return "wsignin"
    if path.endswith("/_api/contextinfo"):
        return "contextinfo"
    return "memberOf" if "/memberof" in path else "request"


class UpstreamHttp:
    """Requests to Microsoft 365 for the probes: timeout, correlation id, no redirects, no cookies.

    It is also msal's ``http_client`` (``get``/``post``/``close``). Each call is recorded in the
    current :class:`Exchange` (see :meth:`exchange`).
    """

    def __init__(self, session: requests.Session, *, timeout: float):
        self.session = _cookieless_view(session)
        self.timeout = timeout

    @contextmanager
    def exchange(self, correlation_id: str) -> Iterator[Exchange]:
        record = Exchange(self, correlation_id)
        token = _CURRENT.set(record)
        try:
            yield record
        finally:
            _CURRENT.reset(token)

    def request(self, method: str, url: str, *, step: str | None = None, **kwargs: Any) -> requests.Response:
        record = _CURRENT.get()
        headers = dict(kwargs.pop("headers", None) or {})
        if record is not None:
            headers["client-request-id"] = record.correlation_id
            headers.setdefault("return-client-request-id", "true")
            record.requests += 1
            record.step = step or _step_of(url)
            record.status, record.headers, record.error_body = None, {}, None
        kwargs.setdefault("timeout", self.timeout)
        kwargs.setdefault("allow_redirects", False)
        response = self.session.request(method, url, headers=headers, **kwargs)
        if record is not None:
            record.status, record.headers = response.status_code, response.headers
            if response.status_code >= 400:
                record.error_body = response.text[:_BODY_KEPT]
        logger.debug("%s %s%s -> %s", method, urlsplit(url).netloc, urlsplit(url).path, response.status_code,
                     extra={"correlation_id": record.correlation_id if record else None})
        return response

    # msal's http_client interface
    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", url, **kwargs)

    def close(self) -> None:
        """msal may call this; the pooled connections belong to the shared session."""


def _cookieless_view(shared: requests.Session) -> requests.Session:
    """A session on the shared session's connection pools (and TLS settings) whose cookie jar
    never stores anything. Never ``close()`` it: that would close the shared adapters."""
    view = requests.Session()
    view.trust_env = False
    view.verify, view.cert, view.proxies = shared.verify, shared.cert, dict(shared.proxies)
    view.adapters = shared.adapters
    view.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return view


class _MsalHttpBridge:
    """The ``http_client`` of the process-wide msal apps: sends through the current step's
    :class:`UpstreamHttp`, so one app serves every probe (and every session) in the process."""

    @staticmethod
    def _http() -> UpstreamHttp:
        record = _CURRENT.get()
        if record is None:
            raise RuntimeError("msal was used outside a probe step")
        return record.http

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self._http().get(url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        return self._http().post(url, **kwargs)

    def close(self) -> None:
        pass


# --- msal: one app per authority, no token cache, no cached failures --------------------------

class _NoTokenCache(msal.TokenCache):
    """A token cache that keeps nothing: every validation signs in again with the password."""

    def add(self, event: Any, **kwargs: Any) -> None:  # noqa: D102
        return None

    def modify(self, credential_type: Any, old_entry: Any, new_key_value_pairs: Any = None) -> None:  # noqa: D102
        return None


class _DiscoveryOnlyCache(dict):
    """msal's ``http_cache`` keeping only discovery GETs (OpenID configuration, user realm).

    msal (``ThrottledHttpClient``) would also cache failed token POSTs (HTTP 400 for 60 s and
    429/5xx for their Retry-After), keyed by a hash of the request body including the password;
    a validation must reach Entra ID every time, so POST entries and their index rows are dropped.
    """

    _INDEX = "_index_"

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(key, str) and key.startswith("POST "):
            return
        if key == self._INDEX:
            sequence, timestamps = value
            timestamps = {k: v for k, v in timestamps.items() if not str(k).startswith("POST ")}
            sequence = [entry for entry in sequence if not str(entry[2]).startswith("POST ")]
            heapq.heapify(sequence)
            value = (sequence, timestamps)
        super().__setitem__(key, value)


_APPS: dict[tuple[str, str], msal.PublicClientApplication] = {}
_APPS_LOCK = threading.Lock()
_APP_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_BRIDGE = _MsalHttpBridge()


def msal_app(authority: str, client_id: str) -> msal.PublicClientApplication:
    """The process-wide msal app of ``authority`` (built in the current probe step; its tenant
    discovery raises when the tenant does not exist, and then nothing is cached)."""
    key = (authority.lower(), client_id.lower())
    app = _APPS.get(key)
    if app is not None:
        return app
    with _APPS_LOCK:
        key_lock = _APP_LOCKS.setdefault(key, threading.Lock())
    with key_lock:  # one discovery per authority, not one per thread that arrives at once
        app = _APPS.get(key)
        if app is None:
            app = msal.PublicClientApplication(
                client_id, authority=authority, http_client=_BRIDGE, instance_discovery=False,
                token_cache=_NoTokenCache(), http_cache=_DiscoveryOnlyCache())
            _APPS[key] = app
    return app


def forget_msal_apps() -> None:
    """Drop the cached apps (tests that need a cold start)."""
    with _APPS_LOCK:
        _APPS.clear()


def _entra_error_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """``error_code`` etc. from Entra's error JSON (token endpoint or discovery)."""
    codes = body.get("error_codes") or []
    description = str(body.get("error_description") or "")
    match = _AADSTS.search(description)
    code = f"AADSTS{codes[0]}" if codes else (f"AADSTS{match.group(1)}" if match else None)
    claims = str(body.get("claims") or "")
    fields: dict[str, Any] = {"error_code": code, "error_description": first_line(description) or body.get("error"),
                              "suberror": body.get("suberror"), "ca_challenge": "capolids" in claims}
    if body.get("trace_id"):
        fields["trace_id"] = body["trace_id"]
    if body.get("correlation_id"):
        fields["correlation_id"] = body["correlation_id"]
    return fields


def first_line(text: str | None, *, limit: int = 500) -> str | None:
    """Entra's description without the Trace ID / Correlation ID / Timestamp lines."""
    if not text:
        return None
    line = re.split(r"\r?\n|\s+Trace ID:", text, maxsplit=1)[0].strip()
    return line[:limit]


# --- the probe ----------------------------------------------------------------------------------

class M365AccountProbe(AccountProbe):
    """:class:`~shared.domain.probes.AccountProbe` against the configured Microsoft cloud.

    :param Settings settings: ``m365_client_id``, ``upstream_timeout`` and the cloud.
    :param requests.Session session: from :func:`shared.adapters.http_session.build_session`; its
        connection pools are shared, its cookie jar is not used.
    """

    def __init__(self, settings: Settings, session: requests.Session):
        self._endpoints: CloudEndpoints = endpoints_for(settings.cloud)
        self._client_id = settings.m365_client_id
        self._http = UpstreamHttp(session, timeout=settings.upstream_timeout)
        self._legacy = SharePointLegacySignIn(self._http, self._endpoints)

    # --- modern ----------------------------------------------------------------------------

    def sign_in_modern(self, tenant_id: str, username: str, password: Password, *,
                       correlation_id: str) -> ProbeResult:
        """1 token request (+ once per process: OpenID configuration, user realm)."""
        authority = f"{self._endpoints.authority_host}/{tenant_id}"
        with self._http.exchange(correlation_id) as ex:
            try:
                app = msal_app(authority, self._client_id)
                result = app.acquire_token_by_username_password(
                    username, password.reveal(), scopes=[self._endpoints.graph_scope])
            except Exception as exc:  # noqa: BLE001 - transport and library errors become data
                return ex.from_exception(exc)
            if "access_token" in result:
                return ex.ok(grant=Grant(result["access_token"]))
            return ex.failed(**_entra_error_fields(result))

    def get_roles(self, grant: Grant, *, correlation_id: str) -> ProbeResult:
        """``GET /v1.0/me/memberOf``: 1 request per page (``@odata.nextLink``)."""
        graph = self._endpoints.graph_url
        url: str | None = f"{graph}/v1.0/me/memberOf"
        templates: list[str] = []
        names: list[str] = []
        with self._http.exchange(correlation_id) as ex:
            try:
                for _ in range(_MAX_MEMBER_OF_PAGES):
                    resp = self._http.request("GET", url, step="memberOf", headers={
                        "Authorization": f"Bearer {grant.reveal()}", "Accept": "application/json"})
                    if resp.status_code != 200:
                        return _graph_failure(ex, resp)
                    body = resp.json()
                    for item in body.get("value", []):
                        if item.get("@odata.type") == _DIRECTORY_ROLE and item.get("roleTemplateId"):
                            templates.append(item["roleTemplateId"])
                            names.append(item.get("displayName") or item["roleTemplateId"])
                    url = body.get("@odata.nextLink")
                    if not url:
                        break
                    if urlsplit(url).netloc.lower() != urlsplit(graph).netloc.lower():
                        return ex.failed("PROBE_FAILURE", "Graph's next page link points to another host")
            except Exception as exc:  # noqa: BLE001
                return ex.from_exception(exc)
            return ex.ok(role_template_ids=tuple(templates), role_names=tuple(names))

    # --- legacy ------------------------------------------------------------------------------

    def sign_in_legacy(self, username: str, password: Password, admin_center_url: str, *,
                       correlation_id: str) -> ProbeResult:
        """extSTS.srf + wsignin1.0: 2 requests."""
        return self._legacy.sign_in(username, password, admin_center_url, correlation_id=correlation_id)

    def check_admin_center(self, grant: Grant, admin_center_url: str, *, correlation_id: str) -> ProbeResult:
        """``POST _api/contextinfo``: 1 request."""
        return self._legacy.check_admin_center(grant, admin_center_url, correlation_id=correlation_id)


def _graph_failure(ex: Exchange, resp: requests.Response) -> ProbeResult:
    error = (_json_or_none(resp.text) or {}).get("error") or {}
    code = {401: "GRAPH_UNAUTHORIZED", 403: "GRAPH_FORBIDDEN"}.get(resp.status_code)
    description = f"{error.get('code', 'HTTP ' + str(resp.status_code))}: {error.get('message', '')}".strip(": ")
    return ex.failed(code, first_line(description))
