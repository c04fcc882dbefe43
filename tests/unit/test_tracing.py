"""One trace from the HTTP request through the queue messages to the outcome event (issue 12, point 8).

Over the in-process app (the real triggers, services and CloudEvent publisher; fake storage and
upstreams), with the spans in memory: a request's ``traceparent`` is continued by its SERVER span,
the work and explanation messages carry it, each worker's CONSUMER span is a child in that trace,
and the published CloudEvents carry it as the distributed-tracing extension, also when the outbox
relay publishes later. Tracing without an exporter changes no answer, and no span carries a secret.
"""
from __future__ import annotations

import json
import sys
import types
from datetime import datetime, timezone

import azure.functions as func
import pytest
from azure.core.exceptions import ServiceRequestError
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from opentelemetry.trace import SpanKind

from shared import telemetry
from shared.adapters.queue_outcome_publisher import QueueOutcomePublisher
from shared.adapters.table_validation_history import _from_entity, _to_entity
from shared.config import Settings
from shared.domain.events import VALIDATION_OUTCOME
from shared.domain.diagnosis import AppliedPolicy, ExplainMessage, PolicyFacts, SignInEntry
from shared.domain.jobs import FanoutMessage, Reason, WorkMessage
from shared.domain.ports import ValidationRecord
from tests.fakes_validation import failed
from tests.inprocess import InProcessApp

T = "11111111-1111-4111-8111-111111111111"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{CALLER_SPAN}-01"
PASSWORD = "Canary-Pw-7f3e!"
FUNCTION_KEY = "Canary-Key-51c2"
APP_PASSWORD = "canaryapppasswd"
CANARIES = (PASSWORD, FUNCTION_KEY, APP_PASSWORD, "code=")


class Queue:
    """A Storage queue client that keeps what is sent (or fails while ``down``)."""

    def __init__(self):
        self.messages: list[str] = []
        self.down = False

    def send_message(self, content, **_):
        if self.down:
            raise ServiceRequestError("injected: the outcomes queue is unreachable")
        self.messages.append(content)

    def events(self) -> list[dict]:
        return [json.loads(m) for m in self.messages]


@pytest.fixture
def spans():
    with telemetry.in_memory() as exporter:
        yield exporter


@pytest.fixture
def queue():
    return Queue()


@pytest.fixture
def app(queue):
    return InProcessApp(publisher=QueueOutcomePublisher(queue))


def run(app: InProcessApp, name: str, *args):
    """Call the app's function ``name`` (a queue or timer trigger) as the worker would."""
    return app.run(name, *args)


def deliver(app: InProcessApp, trigger: str, message) -> None:
    run(app, trigger, func.QueueMessage(id="m-" + message.to_json()[-8:], body=message.to_json().encode()))


def ids(traceparent: str) -> tuple[str, str]:
    """(trace id, parent span id) of a ``traceparent``."""
    _, trace_id, span_id, _ = traceparent.split("-")
    return trace_id, span_id


def hexid(n: int, width: int) -> str:
    return format(n, f"0{width}x")


def create_profile(app, name="Backup", username="admin@contoso.onmicrosoft.com") -> str:
    r = app.call("createProfile", body={"name": name, "username": username, "password": PASSWORD}, tenantId=T)
    assert r.status == 201
    return r.json()["id"]


def only(spans, **where):
    found = [s for s in spans.get_finished_spans()
             if all((s.kind if k == "kind" else s.name if k == "name" else s.attributes.get(k)) == v
                    for k, v in where.items())]
    assert len(found) == 1, (where, [(s.name, s.kind, dict(s.attributes)) for s in spans.get_finished_spans()])
    return found[0]


def assert_no_secret(spans) -> None:
    """The canary rule over every exported span: name, attributes, events, status."""
    exported = spans.get_finished_spans()
    assert exported
    for span in exported:
        text = json.dumps([span.name, dict(span.attributes or {}), [(e.name, dict(e.attributes or {}))
                                                                    for e in span.events],
                           span.status.description], default=str)
        for canary in CANARIES:
            assert canary not in text, (canary, span.name)


# -- the flows -----------------------------------------------------------------------------------

def test_a_job_is_one_trace_from_the_request_through_its_messages_to_its_events(app, spans, queue):
    pids = [create_profile(app, "A"), create_profile(app, "B")]
    spans.clear()
    r = app.call("createValidationJob", body={"profileIds": pids}, tenantId=T,
                 headers={"traceparent": TRACEPARENT, "x-correlation-id": "cid-job",
                          "x-functions-key": FUNCTION_KEY}, params={"code": FUNCTION_KEY})
    assert r.status == 202
    server = only(spans, kind=SpanKind.SERVER)
    assert server.name == "POST /api/tenants/{tenantId}/validation-jobs"
    assert (hexid(server.context.trace_id, 32), hexid(server.parent.span_id, 16)) == (TRACE, CALLER_SPAN)
    assert server.parent.is_remote
    assert server.attributes["m365.operation_id"] == "createValidationJob"
    assert server.attributes["http.response.status_code"] == 202
    assert server.attributes["m365.correlation_id"] == "cid-job"
    assert server.attributes["url.path"] == f"/api/tenants/{T}/validation-jobs"

    (fanout, _), = app.work.sent
    assert isinstance(fanout, FanoutMessage)
    assert ids(fanout.traceparent) == (TRACE, hexid(server.context.span_id, 16))
    app.work.sent.clear()
    deliver(app, "validation_worker", fanout)
    chunk = only(spans, kind=SpanKind.CONSUMER, **{"m365.message.kind": "fanout"})
    assert chunk.name == "process validation-requests" and chunk.parent.span_id == server.context.span_id
    assert chunk.attributes["m365.result"] == "fannedOut" and chunk.attributes["m365.job_id"] == fanout.job_id

    (group, _), = app.work.sent  # one work group: its profiles are validated at once, a span each
    assert sorted(group.profile_ids) == sorted(pids)
    assert ids(group.traceparent) == (TRACE, hexid(chunk.context.span_id, 16))
    deliver(app, "validation_worker", group)

    events = queue.events()
    assert len(events) == 2 and {e["type"] for e in events} == {VALIDATION_OUTCOME}
    for event in events:
        worker = only(spans, kind=SpanKind.CONSUMER, **{"m365.profile_id": event["data"]["profileId"]})
        assert worker.parent.span_id == chunk.context.span_id and worker.attributes["m365.result"] == "passed"
        assert hexid(worker.context.trace_id, 32) == TRACE
        assert ids(event["traceparent"]) == (TRACE, hexid(worker.context.span_id, 16))
    assert all(hexid(s.context.trace_id, 32) == TRACE for s in spans.get_finished_spans())
    assert_no_secret(spans)


def test_validate_profile_is_one_trace_from_the_request_to_the_event(app, spans, queue):
    pid = create_profile(app)
    spans.clear()
    r = app.call("validateProfile", tenantId=T, profileId=pid, headers={"traceparent": TRACEPARENT,
                                                                        "tracestate": "portal=7"})
    assert r.status == 200 and r.json()["status"] == "passed"
    # one SERVER span, opened by the async trigger (not a second one on the executor's thread)
    server = only(spans, kind=SpanKind.SERVER)
    assert server.name == "POST /api/tenants/{tenantId}/profiles/{profileId}/validate"
    assert server.parent.span_id == int(CALLER_SPAN, 16) and hexid(server.context.trace_id, 32) == TRACE
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["m365.operation_id"] == "validateProfile"
    (event,) = queue.events()
    assert ids(event["traceparent"]) == (TRACE, hexid(server.context.span_id, 16))
    assert event["tracestate"] == "portal=7"
    (record,) = app.history.records
    assert record.traceparent == event["traceparent"]
    assert_no_secret(spans)


def test_a_relay_publication_keeps_the_original_trace(app, spans, queue):
    pid = create_profile(app)
    queue.down = True
    r = app.call("validateProfile", tenantId=T, profileId=pid, headers={"traceparent": TRACEPARENT})
    assert r.status == 200 and queue.messages == [] and len(app.history.outbox) == 1
    server = only(spans, kind=SpanKind.SERVER, **{"m365.operation_id": "validateProfile"})
    queue.down = False
    spans.clear()
    run(app, "outcome_outbox_relay", None)
    (event,) = queue.events()
    assert ids(event["traceparent"]) == (TRACE, hexid(server.context.span_id, 16))
    assert app.history.outbox == []


def test_the_explanation_follow_up_continues_the_trace_to_outcome_explained(app, spans, queue):
    r = app.call("createProfile", body={"kind": "app", "name": "Diagnostics", "clientId": T,
                                        "certificate": {"generate": True}}, tenantId=T)
    assert r.status == 201
    pid = create_profile(app, "Blocked", "blocked@contoso.onmicrosoft.com")
    app.probe.answer("sign_in_modern", failed("sign_in_modern", "AADSTS53003", correlation_id="cid-blocked"))
    spans.clear()
    r = app.call("validateProfile", tenantId=T, profileId=pid, headers={"traceparent": TRACEPARENT})
    assert r.json()["explanation"]["state"] == "pending"
    server = only(spans, kind=SpanKind.SERVER)
    (msg, _), = app.explanation_queue.sent
    assert ids(msg.traceparent) == (TRACE, hexid(server.context.span_id, 16))
    app.diagnostics.entries.append(SignInEntry(
        id="signin-1", created=datetime.now(timezone.utc), correlation_id="cid-blocked",
        user_principal_name="blocked@contoso.onmicrosoft.com", app_id="app", ip_address="203.0.113.5",
        error_code=53003, conditional_access_status="failure",
        policies=(AppliedPolicy("p-loc", "Block outside the office", "failure", ("block",)),)))
    app.diagnostics.policy_facts["p-loc"] = PolicyFacts("p-loc", "Block outside the office", "enabled",
                                                        built_in_controls=("block",), includes_locations=True)
    deliver(app, "explanation_worker", msg)
    look = only(spans, kind=SpanKind.CONSUMER)
    assert look.name == "process outcome-explanations" and look.parent.span_id == server.context.span_id
    assert look.attributes["m365.result"] == "explained"
    outcome, explained = queue.events()
    assert explained["type"].endswith("explained") and explained["id"] == outcome["id"] + ":explained"
    assert ids(explained["traceparent"]) == ids(outcome["traceparent"]) == (TRACE, hexid(server.context.span_id, 16))
    assert_no_secret(spans)


def test_no_span_attribute_carries_a_secret(app, spans):
    """Every path that takes a secret, traced: form test, create with a password and an app password,
    a rotation, a failed sign-in (the function key as ``?code=`` and as a header too)."""
    keys = {"headers": {"x-functions-key": FUNCTION_KEY, "traceparent": TRACEPARENT}, "params": {"code": FUNCTION_KEY}}
    assert app.call("validationTest", body={"username": "admin@contoso.onmicrosoft.com", "password": PASSWORD},
                    tenantId=T, **keys).status == 200
    mfa = app.call("createProfile", body={"name": "MFA", "username": "mfa@contoso.onmicrosoft.com",
                                          "password": APP_PASSWORD, "mfaEnabled": True,
                                          "adminCenter": {"mode": "custom",
                                                          "url": "https://contoso-admin.sharepoint.com"}},
                   tenantId=T, **keys)
    assert mfa.status == 201
    app.probe.answer("sign_in_legacy", failed("sign_in_legacy", "AADSTS50126"))
    assert app.call("validateProfile", tenantId=T, profileId=mfa.json()["id"], **keys).status == 200
    etag = app.call("getProfile", tenantId=T, profileId=mfa.json()["id"], **keys).json()["etag"]
    assert app.call("patchProfile", body={"password": PASSWORD + "2"}, tenantId=T, profileId=mfa.json()["id"],
                    headers={**keys["headers"], "If-Match": etag}, params=keys["params"]).status == 200
    assert app.call("createProfile", body={"name": "", "username": "x", "password": PASSWORD}, tenantId=T,
                    **keys).status == 422
    assert len([s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]) == 6
    assert_no_secret(spans)


def shape(value, key=None):
    """An answer without what differs between any two runs (ids, times, etags): keys, types and
    the words that matter."""
    if isinstance(value, dict):
        return {k: shape(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    if key in ("status", "messageId", "state", "kind", "total", "name"):
        return value
    return type(value).__name__


def scenario(app: InProcessApp, headers: dict) -> list:
    pid = create_profile(app)
    answers = [app.call("validateProfile", tenantId=T, profileId=pid, headers=headers),
               app.call("createValidationJob", body={"profileIds": [pid]}, tenantId=T, headers=headers),
               app.call("getProfile", tenantId=T, profileId="not-a-guid", headers=headers),
               app.call("validationTest", body={"username": "reader@contoso.onmicrosoft.com", "password": "pw"},
                        tenantId=T, headers=headers)]
    return [(a.status, sorted(a.headers), shape(a.json())) for a in answers]


def test_tracing_without_an_exporter_changes_no_answer(queue):
    none = Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true", "M365_CLOUD": "local"})
    assert none.traces_exporter == "none" and not none.applicationinsights_connection_string
    provider = telemetry.build_provider(none)
    assert provider._active_span_processor._span_processors == ()  # exports nothing
    headers = {"traceparent": TRACEPARENT, "x-correlation-id": "cid-same"}
    with telemetry.using(provider):
        off = scenario(InProcessApp(publisher=QueueOutcomePublisher(Queue())), headers)
        plain = scenario(InProcessApp(publisher=QueueOutcomePublisher(Queue())), {"x-correlation-id": "cid-same"})
    with telemetry.in_memory() as exported:
        on = scenario(InProcessApp(publisher=QueueOutcomePublisher(Queue())), headers)
    assert exported.get_finished_spans()
    assert on == off == plain
    assert all("traceparent" not in [h.lower() for h in headers_] for _, headers_, _ in on)


def test_a_malformed_traceparent_starts_a_new_trace(app, spans):
    for bad in ("00-" + "0" * 32 + "-" + CALLER_SPAN + "-01", "garbage", "00-xyz", TRACEPARENT + "-extra-" * 50):
        spans.clear()
        r = app.call("createValidationJob", body={"all": True}, tenantId=T, headers={"traceparent": bad})
        assert r.status == 202
        server = only(spans, kind=SpanKind.SERVER)
        assert server.parent is None and hexid(server.context.trace_id, 32) != TRACE


def test_a_scheduled_run_is_the_root_of_its_jobs_trace(app, spans):
    create_profile(app)
    spans.clear()
    run(app, "scheduled_revalidation", None)
    root = only(spans, name="scheduled revalidation")
    assert root.parent is None and root.attributes["m365.jobs"] == 1
    (fanout, _), = app.work.sent
    assert ids(fanout.traceparent) == (hexid(root.context.trace_id, 32), hexid(root.context.span_id, 16))


# -- envelopes and storage: version 1 stays version 1 ------------------------------------------------

def test_work_messages_carry_an_optional_traceparent_and_old_ones_still_read():
    old = '{"v": 1, "tenantId": "t", "profileId": "p", "jobId": "j", "reason": "batch", "correlationId": "c"}'
    msg = WorkMessage.from_json(old)
    assert msg.traceparent is None and msg.tracestate is None
    assert "traceparent" not in msg.to_json()  # without a trace, the envelope is as it was
    traced = WorkMessage("t", "p", "j", Reason.BATCH, "c", traceparent=TRACEPARENT, tracestate="a=b")
    assert WorkMessage.from_json(traced.to_json()) == traced
    fanout = FanoutMessage("t", "j", ("p1", "p2"), Reason.BATCH, "c", traceparent=TRACEPARENT)
    assert WorkMessage.from_json(fanout.to_json()) == fanout
    assert {m.traceparent for m, _ in fanout.expand()} == {TRACEPARENT}
    other = f"00-{TRACE}-{'1' * 16}-01"
    assert {m.traceparent for m, _ in fanout.expand(traceparent=other)} == {other}
    assert WorkMessage.from_json(json.dumps({**json.loads(old), "traceparent": 42})).traceparent is None


def test_explain_messages_carry_an_optional_traceparent():
    at = datetime(2026, 12, 1, tzinfo=timezone.utc)
    plain = ExplainMessage("t", "p", "r", "c", at)
    assert "traceparent" not in plain.to_json() and ExplainMessage.from_json(plain.to_json()) == plain
    traced = ExplainMessage("t", "p", "r", "c", at, attempt=1, traceparent=TRACEPARENT, tracestate="a=b")
    assert ExplainMessage.from_json(traced.to_json()) == traced


def test_the_history_row_keeps_the_trace_and_old_rows_have_none():
    rec = ValidationRecord(tenant_id=T, profile_id="p", record_id="r", at=datetime(2026, 12, 1, tzinfo=timezone.utc),
                           status="passed", message_id=None, outcome={"status": "passed"}, reason="manual",
                           correlation_id="c", traceparent=TRACEPARENT, tracestate="a=b")
    entity = _to_entity(rec)
    assert (entity["TraceParent"], entity["TraceState"]) == (TRACEPARENT, "a=b")
    assert _from_entity(entity) == rec
    old = {k: v for k, v in entity.items() if k not in ("TraceParent", "TraceState")}
    assert _from_entity(old).traceparent is None and _from_entity(old).tracestate is None


def test_an_event_without_a_trace_has_no_tracing_extension(queue):
    rec = ValidationRecord(tenant_id=T, profile_id="p", record_id="r", at=datetime(2026, 12, 1, tzinfo=timezone.utc),
                           status="passed", message_id=None, outcome={"status": "passed"}, reason="manual",
                           correlation_id="c")
    QueueOutcomePublisher(queue).publish(rec)
    (event,) = queue.events()
    assert "traceparent" not in event and "tracestate" not in event


# -- which exporter ------------------------------------------------------------------------------

BASE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "M365_CLOUD": "local"}


def test_console_when_asked():
    (exporter, batched), = telemetry.exporters_for(Settings.from_env({**BASE, "OTEL_TRACES_EXPORTER": "console"}))
    assert isinstance(exporter, ConsoleSpanExporter) and not batched
    with pytest.raises(ValueError, match="OTEL_TRACES_EXPORTER"):
        Settings.from_env({**BASE, "OTEL_TRACES_EXPORTER": "zipkin"})


def test_azure_monitor_when_the_connection_string_is_set_with_the_apps_identity(monkeypatch):
    made = []

    class AzureMonitorTraceExporter(ConsoleSpanExporter):
        def __init__(self, **kwargs):
            super().__init__()
            made.append(kwargs)

    fake = types.ModuleType("azure.monitor.opentelemetry.exporter")
    fake.AzureMonitorTraceExporter = AzureMonitorTraceExporter
    monkeypatch.setitem(sys.modules, "azure.monitor.opentelemetry.exporter", fake)
    conn = "InstrumentationKey=00000000-0000-4000-8000-000000000000;IngestionEndpoint=https://example.invalid/"
    settings = Settings.from_env({**BASE, "M365_CLOUD": "public", "RESERVED_IP_RANGES": "203.0.113.0/28",
                                  "AZURE_CLIENT_ID": "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa",
                                  "APPLICATIONINSIGHTS_CONNECTION_STRING": conn})
    assert conn not in repr(settings)
    (exporter, batched), = telemetry.exporters_for(settings)
    assert isinstance(exporter, AzureMonitorTraceExporter) and batched
    (kwargs,) = made
    assert kwargs["connection_string"] == conn
    assert type(kwargs["credential"]).__name__ == "ManagedIdentityCredential"
    assert telemetry.exporters_for(Settings.from_env(BASE)) == []
