"""The recorded HTTP exchange every probe step sends its requests through: :class:`UpstreamHttp`.

One module for what the Entra, Graph and SharePoint steps share, so that each of them depends on
this record and on the domain only, never on another upstream's module:

* Every request has the configured timeout, sends the validation's correlation id as
  ``client-request-id``, does not follow redirects and runs on a cookie-less view of the shared
  session: no cookie (Entra's, SharePoint's FedAuth) outlives one request, so one validation never
  signs in with another's session.
* Each request is counted in the current :class:`Exchange` under the step its caller names; the
  last answer's status, headers (``Retry-After``, trace id) and error body make the step's
  :class:`~shared.domain.probes.ProbeResult`.
"""
from __future__ import annotations

import contextvars
import http.cookiejar
import json
import logging
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Iterator, Mapping
from urllib.parse import urlsplit

import requests

from shared.adapters.lean_session import LeanSession
from shared.domain.probes import CONNECTION_ERROR, DNS_FAILURE, TIMEOUT, TLS_ERROR, ProbeResult
from shared.domain.validation_test import time_left

logger = logging.getLogger(__name__)

_BODY_KEPT = 8192
#: Largest upstream answer read (decoded); every real one (token, STS envelope, memberOf page) is
#: a few KiB. Past it, or past the deadline while it trickles in, the step fails as a transport error.
MAX_RESPONSE_BYTES = 1024 * 1024
_CHUNK = 64 * 1024


class DeadlineExceeded(requests.Timeout):
    """The Validation Test's deadline passed before or while this request ran."""


class HostileResponse(requests.ConnectionError):
    """An answer this service will not parse: too large, or XML that declares a DTD (SOAP forbids
    them; without one no entity can be expanded, so no billion laughs)."""

#: Reads an upstream's error body into :meth:`Exchange.failed` keywords (``{}``: not its format).
ErrorFields = Callable[[str], Mapping[str, Any]]


@dataclass
class Exchange:
    """The requests of one probe step: how many, and what the last answer was.

    :ivar default_step: the step of requests whose caller names none (set by :meth:`UpstreamHttp.exchange`).
    :ivar step: the step of the last request sent (None before the first).
    """

    http: "UpstreamHttp"
    correlation_id: str
    default_step: str | None = None
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

    def from_exception(self, exc: BaseException, *, error_fields: ErrorFields | None = None) -> ProbeResult:
        """No usable answer: a transport problem, or an answer the client library refused.

        :param error_fields: the upstream's error-body reader, for a library that raises on an
            error answer (msal on a failed discovery) instead of returning it.
        """
        if isinstance(exc, DeadlineExceeded):
            return self.failed(TIMEOUT, "the Validation Test's deadline passed", http_status=None, retry_after=None)
        if isinstance(exc, requests.Timeout):
            return self.failed(TIMEOUT, "no answer within the timeout", http_status=None, retry_after=None)
        if isinstance(exc, HostileResponse):
            return self.failed(CONNECTION_ERROR, f"the answer was refused: {exc}", http_status=None,
                               retry_after=None)
        if isinstance(exc, requests.exceptions.SSLError):
            return self.failed(TLS_ERROR, "the TLS handshake failed", http_status=None, retry_after=None)
        if isinstance(exc, requests.ConnectionError):
            dns = "NameResolutionError" in repr(exc) or "Name or service not known" in repr(exc)
            return self.failed(DNS_FAILURE if dns else CONNECTION_ERROR,
                               "the host name does not resolve" if dns else "the connection failed",
                               http_status=None, retry_after=None)
        if error_fields and self.status is not None and self.status >= 400 and self.error_body:
            fields = error_fields(self.error_body)
            if fields.get("error_code"):
                return self.failed(**fields)
        if self.status is not None and (self.status == 429 or self.status >= 500):
            return self.failed(None, f"HTTP {self.status}")
        logger.warning("probe step %s failed unexpectedly: %s", self.step, type(exc).__name__,
                       extra={"correlation_id": self.correlation_id})
        return self.failed("PROBE_FAILURE", f"{type(exc).__name__} (HTTP {self.status})")


_CURRENT: contextvars.ContextVar[Exchange | None] = contextvars.ContextVar("upstream_exchange", default=None)


def current_exchange() -> Exchange | None:
    """The :class:`Exchange` of the step running in this context (for client libraries' callbacks)."""
    return _CURRENT.get()


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


def json_object(text: str | None) -> dict | None:
    """The JSON object in ``text``; None when it is not one (an HTML error page, say)."""
    try:
        value = json.loads(text or "")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def first_line(text: str | None, *, limit: int = 500) -> str | None:
    """A Microsoft error text without the Trace ID / Correlation ID / Timestamp lines it appends."""
    if not text:
        return None
    line = re.split(r"\r?\n|\s+Trace ID:", text, maxsplit=1)[0].strip()
    return line[:limit]


class UpstreamHttp:
    """Requests to Microsoft 365 for the probes: timeout, correlation id, no redirects, no cookies.

    :param requests.Session session: the shared session; only its connection pools and TLS
        settings are used.
    :param float timeout: seconds, for every request.
    """

    def __init__(self, session: requests.Session, *, timeout: float):
        self.session = _cookieless_view(session)
        self.timeout = timeout

    @contextmanager
    def exchange(self, correlation_id: str, *, step: str | None = None) -> Iterator[Exchange]:
        """Record the requests sent in this block (this context only) as one probe step.

        :param str step: the step of requests that do not name one (a client library's).
        """
        record = Exchange(self, correlation_id, default_step=step)
        token = _CURRENT.set(record)
        try:
            yield record
        finally:
            _CURRENT.reset(token)

    def request(self, method: str, url: str, *, step: str | None = None, **kwargs: Any) -> requests.Response:
        """Send one request, counted in the current exchange under ``step`` (default: the exchange's)."""
        record = _CURRENT.get()
        headers = dict(kwargs.pop("headers", None) or {})
        if record is not None:
            headers["client-request-id"] = record.correlation_id
            headers.setdefault("return-client-request-id", "true")
            record.requests += 1
            record.step = step or record.default_step
            record.status, record.headers, record.error_body = None, {}, None
        budget = self.timeout
        left = time_left()
        if left is not None:
            if left <= 0:
                raise DeadlineExceeded("the Validation Test's deadline has passed")
            budget = min(budget, left)
        kwargs["timeout"] = min(kwargs.get("timeout") or budget, budget)
        kwargs.setdefault("allow_redirects", False)
        response = self.session.request(method, url, headers=headers, stream=True, **kwargs)
        _read_bounded(response, until=time.monotonic() + budget)
        if record is not None:
            record.status, record.headers = response.status_code, response.headers
            if response.status_code >= 400:
                record.error_body = response.text[:_BODY_KEPT]
        logger.debug("%s %s%s -> %s", method, urlsplit(url).netloc, urlsplit(url).path, response.status_code,
                     extra={"correlation_id": record.correlation_id if record else None})
        return response


def _read_bounded(response: requests.Response, *, until: float) -> None:
    """Read the streamed body into ``response`` (so ``.text``/``.json()`` work) within
    :data:`MAX_RESPONSE_BYTES` and by ``until`` (monotonic): a slow-loris answer that sends a byte
    a second ends at the deadline, not at the per-read timeout times its length."""
    chunks, size = [], 0
    try:
        while True:
            chunk = response.raw.read1(_CHUNK, decode_content=True)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                raise HostileResponse(f"the answer is larger than {MAX_RESPONSE_BYTES} bytes")
            if time.monotonic() > until:
                raise DeadlineExceeded("the answer was still arriving at the deadline")
            chunks.append(chunk)
    except (DeadlineExceeded, HostileResponse):
        response.close()
        raise
    except Exception as exc:  # noqa: BLE001 - urllib3's read errors, as requests maps them
        response.close()
        if "timed out" in str(exc).lower():
            raise requests.Timeout(str(exc)) from exc
        raise requests.ConnectionError(str(exc)) from exc
    body = b"".join(chunks)
    head = body[:4096].lstrip().lower()
    if head.startswith(b"<") and (b"<!doctype" in body[:65536].lower() or b"<!entity" in body[:65536].lower()):
        raise HostileResponse("the XML answer declares a DTD")
    if _declares_utf8(response.headers.get("Content-Type")):
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:  # read as text, it would be replacement characters
            raise HostileResponse(f"the answer is not the UTF-8 it declares (byte {exc.start})") from None
    response._content = body  # noqa: SLF001 - requests' own cache of a read body
    response._content_consumed = True  # noqa: SLF001


_CHARSET = re.compile(r"charset\s*=\s*\"?([A-Za-z0-9._-]+)", re.IGNORECASE)


def _declares_utf8(content_type: str | None) -> bool:
    """Whether the answer is UTF-8 by its Content-Type: ``charset=utf-8``, or JSON without a
    charset (RFC 8259: JSON is UTF-8). XML without a charset declares its own encoding."""
    value = (content_type or "").lower()
    match = _CHARSET.search(value)
    if match:
        return match.group(1) in ("utf-8", "utf8")
    return "json" in value.split(";")[0]


def _cookieless_view(shared: requests.Session) -> requests.Session:
    """A session on the shared session's connection pools (and TLS settings) whose cookie jar
    never stores anything (so its requests keep :class:`LeanSession`'s direct path). Never
    ``close()`` it: that would close the shared adapters."""
    view = LeanSession()
    view.verify, view.cert, view.proxies = shared.verify, shared.cert, dict(shared.proxies)
    view.adapters = shared.adapters
    view.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return view
