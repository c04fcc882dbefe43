"""Tracing: one trace from the HTTP request through the queue messages to the outcome event.

The trace context travels as W3C Trace Context (``traceparent``, ``tracestate``):

- an HTTP request's ``traceparent`` header is continued by the request's SERVER span
  (:func:`server_span`, in :func:`functions._http.http_endpoint`); a request without one (or with a
  malformed one) starts a new trace;
- work messages (``validation-requests``: fan-out and per-profile) and explanation follow-ups
  (``outcome-explanations``) carry the ``traceparent`` of the span that sent them
  (:func:`current_traceparent`), and each worker continues it in a CONSUMER span per message
  (:func:`consumer_span`);
- a stored validation record keeps the ``traceparent`` of the span that stored it, and its outcome
  events (``outcome``, ``outcome.explained``) carry it as the CloudEvents distributed-tracing
  extension, also when the outbox relay publishes them later.

Export (once per process, :func:`configure`, from :class:`shared.config.Settings`): the Azure
Monitor exporter when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set (Azure; it authenticates with
the app's managed identity, which ``infra/app/rbac.bicep`` makes a Monitoring Metrics Publisher of
the Application Insights component; imported only then), the console when
``OTEL_TRACES_EXPORTER=console``, nothing otherwise. Without an exporter spans are still made, so
the context still propagates, but none leaves the process. Tests install an in-memory exporter with
:func:`in_memory`.

Span attributes are ids, names and numbers only (operation id, route, path without the query,
status, correlation id, tenant/profile/job ids, message id): never a body, a header value other
than ``traceparent``, a query string (the function key travels as ``?code=``) or a secret.
"""
from __future__ import annotations

import json
import logging
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, TypeVar

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor,
                                            SpanExporter)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from shared.config import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

SERVICE_NAME = "m365-service-account-profiles"
TRACER_NAME = "shared.telemetry"
#: ``OTEL_TRACES_EXPORTER`` values this app understands (the Azure Monitor exporter needs none:
#: the connection string selects it).
EXPORTERS = ("none", "console")

_PROPAGATOR = TraceContextTextMapPropagator()
_lock = threading.Lock()
_provider: TracerProvider | None = None


# -- the process's provider -----------------------------------------------------------------------
def exporters_for(settings: "Settings") -> list[tuple[SpanExporter, bool]]:
    """The exporters ``settings`` ask for, each with whether it is batched: Azure Monitor when the
    connection string is set (batched), the console when ``OTEL_TRACES_EXPORTER=console``."""
    out: list[tuple[SpanExporter, bool]] = []
    if settings.applicationinsights_connection_string:
        # Imported here only: the exporter (and its dependency tree) is needed in Azure alone.
        from azure.monitor.opentelemetry.exporter import AzureMonitorTraceExporter

        from shared.adapters.http_session import build_credential

        out.append((AzureMonitorTraceExporter(connection_string=settings.applicationinsights_connection_string,
                                              credential=build_credential(settings)), True))
    if settings.traces_exporter == "console":
        out.append((ConsoleSpanExporter(), False))
    return out


def build_provider(settings: "Settings") -> TracerProvider:
    """A provider exporting where ``settings`` say (possibly nowhere)."""
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    for exporter, batched in exporters_for(settings):
        provider.add_span_processor(BatchSpanProcessor(exporter) if batched else SimpleSpanProcessor(exporter))
    return provider


def configure(settings: "Settings | None" = None) -> TracerProvider:
    """The process's provider, built on first use from ``settings`` (default: the environment's).
    Settings that cannot be read give a provider that exports nothing (the request itself then
    reports the configuration problem); later calls return the same provider."""
    global _provider
    with _lock:
        if _provider is not None:
            return _provider
        if settings is None:
            from shared.config import ConfigurationError, Settings

            try:
                settings = Settings.from_env()
            except ConfigurationError as exc:
                log.warning("tracing exports nothing: %s", exc)
        try:
            _provider = build_provider(settings) if settings is not None else TracerProvider()
        except Exception:  # noqa: BLE001 - tracing must never stop the app
            log.exception("tracing exports nothing: the exporter could not be set up")
            _provider = TracerProvider()
        return _provider


def tracer() -> trace.Tracer:
    return configure().get_tracer(TRACER_NAME)


@contextmanager
def in_memory() -> Iterator[InMemorySpanExporter]:
    """Tests: the process's spans go to an in-memory exporter (finished spans, in end order) for
    the duration; the previous provider is restored afterwards."""
    global _provider
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with _lock:
        previous, _provider = _provider, provider
    try:
        yield exporter
    finally:
        with _lock:
            _provider = previous
        provider.shutdown()


@contextmanager
def using(provider: TracerProvider) -> Iterator[TracerProvider]:
    """Tests: use ``provider`` (e.g. :func:`build_provider`'s) for the duration."""
    global _provider
    with _lock:
        previous, _provider = _provider, provider
    try:
        yield provider
    finally:
        with _lock:
            _provider = previous


# -- propagation ----------------------------------------------------------------------------------
def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span (None outside a span)."""
    return _inject().get("traceparent")


def current_tracestate() -> str | None:
    """The W3C ``tracestate`` of the current span (None when empty)."""
    return _inject().get("tracestate") or None


def _inject() -> dict[str, str]:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier


def context_of(traceparent: str | None, tracestate: str | None = None) -> Context | None:
    """The remote parent that ``traceparent`` names (None when absent or malformed: a new trace)."""
    if not traceparent or not isinstance(traceparent, str):
        return None
    carrier = {"traceparent": traceparent, **({"tracestate": tracestate} if isinstance(tracestate, str) else {})}
    ctx = _PROPAGATOR.extract(carrier)
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def message_trace(text: str) -> tuple[str | None, str | None, dict[str, Any]]:
    """A JSON queue message's ``traceparent``, ``tracestate`` and its envelope ids (for the span's
    attributes); an unreadable message gives nothing (its handler says why)."""
    try:
        raw = json.loads(text)
    except (ValueError, TypeError):
        return None, None, {}
    if not isinstance(raw, dict):
        return None, None, {}
    ids = {attr: raw[key] for key, attr in _ENVELOPE_ATTRIBUTES.items() if isinstance(raw.get(key), str)}
    if isinstance(raw.get("kind"), str):
        ids["m365.message.kind"] = raw["kind"]
    tp, ts = raw.get("traceparent"), raw.get("tracestate")
    return (tp if isinstance(tp, str) else None), (ts if isinstance(ts, str) else None), ids


#: Envelope fields (``WorkMessage``, ``FanoutMessage``, ``ExplainMessage``) that become attributes.
_ENVELOPE_ATTRIBUTES = {"tenantId": "m365.tenant_id", "profileId": "m365.profile_id", "jobId": "m365.job_id",
                        "recordId": "m365.record_id", "correlationId": "m365.correlation_id",
                        "reason": "m365.reason"}


# -- spans ----------------------------------------------------------------------------------------
@contextmanager
def server_span(name: str, *, headers: Mapping[str, str], attributes: Mapping[str, Any]) -> Iterator[Span]:
    """A SERVER span for one HTTP request, continuing the request's ``traceparent`` header."""
    parent = context_of(headers.get("traceparent"), headers.get("tracestate"))
    with tracer().start_as_current_span(name, context=parent, kind=SpanKind.SERVER,
                                        attributes=dict(attributes), record_exception=False,
                                        set_status_on_exception=False) as span:
        yield span


@contextmanager
def consumer_span(queue: str, text: str, *, message_id: str | None = None,
                  dequeue_count: int | None = None) -> Iterator[Span]:
    """A CONSUMER span for one queue message, continuing the ``traceparent`` it carries."""
    traceparent, tracestate, ids = message_trace(text)
    attributes: dict[str, Any] = {"messaging.system": "azure_queue_storage", "messaging.operation.type": "process",
                                  "messaging.destination.name": queue, **ids}
    if message_id:
        attributes["messaging.message.id"] = message_id
    if dequeue_count is not None:
        attributes["messaging.azure_queue.dequeue_count"] = dequeue_count
    with _span(f"process {queue}", context=context_of(traceparent, tracestate), kind=SpanKind.CONSUMER,
               attributes=attributes) as span:
        yield span


def consume(queue: str, text: str, handle: Callable[[], T], *, message_id: str | None = None,
            dequeue_count: int | None = None) -> T:
    """``handle()`` in the message's CONSUMER span; its result (an enum: the log line's word) goes
    on the span as ``m365.result``."""
    with consumer_span(queue, text, message_id=message_id, dequeue_count=dequeue_count) as span:
        result = handle()
        span.set_attribute("m365.result", str(getattr(result, "value", result)))
        return result


@contextmanager
def internal_span(name: str, **attributes: Any) -> Iterator[Span]:
    """A span of the app's own (a timer run: the root of the trace of the jobs it creates)."""
    with _span(name, kind=SpanKind.INTERNAL, attributes=attributes) as span:
        yield span


@contextmanager
def _span(name: str, **options: Any) -> Iterator[Span]:
    """A current span whose failure is recorded by the exception's type only: an exception's text is
    not vetted for the trace (the log has it)."""
    with tracer().start_as_current_span(name, record_exception=False, set_status_on_exception=False,
                                        **options) as span:
        try:
            yield span
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise


def set_http_status(span: Span, status: int) -> None:
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
