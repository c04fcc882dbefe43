"""Signed portal webhooks: signature, replay window, de-duplication, CloudEvents parsing."""
import json

import pytest

from shared.domain.errors import InvalidInput, Unauthorized
from shared.services.webhooks import (EVENT_PROFILE_DELETED, WebhookEventLog, WebhookReceiver, sign)

KEY = "portal-key-123"
NOW = 1_800_000_000


class MemoryLog(WebhookEventLog):
    def __init__(self):
        self.seen = set()

    def try_record(self, portal_id, event_id, *, event_type):
        if (portal_id, event_id) in self.seen:
            return False
        self.seen.add((portal_id, event_id))
        return True

    def forget(self, portal_id, event_id):
        self.seen.discard((portal_id, event_id))

    def ping(self):
        pass


def event(eid="e1", etype=EVENT_PROFILE_DELETED, data=None):
    return json.dumps({"specversion": "1.0", "id": eid, "source": "/portals/p1", "type": etype,
                       "datacontenttype": "application/json",
                       "data": data or {"tenantId": "11111111-1111-4111-8111-111111111111",
                                        "profileId": "aaaaaaaa-1111-4111-8111-111111111111"}}).encode()


def headers(body, ts=NOW, key=KEY, portal="p1"):
    return {"X-Portal-Id": portal, "X-Signature-Timestamp": str(ts), "X-Signature": sign(key, str(ts), body),
            "Content-Type": "application/cloudevents+json"}


@pytest.fixture
def receiver():
    calls = []

    def handler(data, cid):
        calls.append(data)
        if data.get("explode"):
            raise RuntimeError("boom")
        return {"ok": True}

    r = WebhookReceiver(get_keys=lambda name: [KEY, "previous-key"] if name == "webhook-p1" else [], events=MemoryLog(),
                        handlers={EVENT_PROFILE_DELETED: handler}, clock=lambda: NOW)
    r.calls = calls
    return r


def test_valid_event_is_dispatched_once(receiver):
    body = event()
    first = receiver.receive(headers(body), body, correlation_id="c")
    again = receiver.receive(headers(body), body, correlation_id="c")
    assert first["duplicate"] is False and again["duplicate"] is True
    assert len(receiver.calls) == 1


@pytest.mark.parametrize("tamper", [
    lambda h, b: ({**h, "X-Signature": "sha256=" + "0" * 64}, b),
    lambda h, b: (h, b + b" "),
    lambda h, b: (headers(b, key="wrong"), b),
    lambda h, b: (headers(b, portal="unknown"), b),
    lambda h, b: (headers(b, ts=NOW - 301), b),
    lambda h, b: (headers(b, ts=NOW + 301), b),
    lambda h, b: ({k: v for k, v in h.items() if k != "X-Signature"}, b),
])
def test_bad_signatures_and_stale_timestamps_are_rejected(receiver, tamper):
    body = event()
    h, b = tamper(headers(body), body)
    with pytest.raises(Unauthorized):
        receiver.receive(h, b, correlation_id="c")
    assert receiver.calls == []


def test_any_enabled_key_version_verifies_during_rotation(receiver):
    body = event(eid="rotated")
    assert receiver.receive(headers(body, key="previous-key"), body, correlation_id="c")["duplicate"] is False


def test_failed_processing_does_not_swallow_the_retry(receiver):
    body = event(data={"tenantId": "11111111-1111-4111-8111-111111111111", "explode": True})
    for _ in range(2):
        with pytest.raises(RuntimeError):
            receiver.receive(headers(body), body, correlation_id="c")
    assert len(receiver.calls) == 2


def test_not_a_cloudevent_is_invalid_input(receiver):
    body = b'{"hello": "world"}'
    with pytest.raises(InvalidInput):
        receiver.receive(headers(body), body, correlation_id="c")
    body = event(etype="com.example.other")
    with pytest.raises(InvalidInput) as info:
        receiver.receive(headers(body), body, correlation_id="c")
    assert {e.field for e in info.value.errors} == {"type"}


# --- issue 12: no 500 from any header, no Key Vault read for unknown portals, keys bound to tenants

TENANT = "11111111-1111-4111-8111-111111111111"


def registered(portals, reads):
    def get_keys(name):
        reads.append(name)
        return [KEY] if name == "webhook-p1" else []

    return WebhookReceiver(get_keys=get_keys, events=MemoryLog(), handlers={EVENT_PROFILE_DELETED: lambda d, c: {}},
                           clock=lambda: NOW, portals=portals)


@pytest.mark.parametrize("ts", ["9" * 5000, "²", "١٢٣", "1" * 13, " 1800000000", "1800000000\n", ""])
def test_odd_timestamps_are_refused_not_500(receiver, ts):
    body = event()
    h = {**headers(body), "X-Signature-Timestamp": ts}
    with pytest.raises(Unauthorized):
        receiver.receive(h, body, correlation_id="c")


@pytest.mark.parametrize("signature", ["sha256=é" + "0" * 63, "sha256=" + "0" * 65, "sha256=", "md5=00"])
def test_odd_signatures_are_refused_not_500(receiver, signature):
    body = event()
    with pytest.raises(Unauthorized):
        receiver.receive({**headers(body), "X-Signature": signature}, body, correlation_id="c")


def test_every_refusal_says_the_same_terse_thing(receiver):
    body = event()
    texts = set()
    for h in (headers(body, key="wrong"), headers(body, portal="unknown"), headers(body, ts=NOW - 999),
              {**headers(body), "X-Signature": "x"}):
        with pytest.raises(Unauthorized) as info:
            receiver.receive(h, body, correlation_id="c")
        texts.add(str(info.value))
    assert texts == {"The request is not signed by a portal this service knows."}


def test_unknown_portals_cost_no_key_vault_read():
    reads = []
    r = registered({"p1": frozenset({TENANT})}, reads)
    body = event()
    for i in range(300):
        with pytest.raises(Unauthorized):
            r.receive(headers(body, portal=f"stranger-{i}"), body, correlation_id="c")
    assert reads == []
    r.receive(headers(body), body, correlation_id="c")
    r.receive(headers(event(eid="e2")), event(eid="e2"), correlation_id="c")
    assert reads == ["webhook-p1"]  # cached


def test_without_a_registry_reads_are_budgeted_and_the_cache_is_bounded():
    from shared.services import webhooks

    reads = []
    r = registered(None, reads)
    body = event()
    for i in range(300):
        with pytest.raises(Unauthorized):
            r.receive(headers(body, portal=f"stranger-{i}"), body, correlation_id="c")
    assert len(reads) == webhooks.LOOKUPS_PER_MINUTE
    assert len(r._keys) <= webhooks.KEY_CACHE_SIZE


def test_a_portal_key_acts_only_for_its_tenants():
    reads = []
    r = registered({"p1": frozenset({TENANT})}, reads)
    other = event(eid="x", data={"tenantId": "22222222-2222-4222-8222-222222222222",
                                 "profileId": "aaaaaaaa-1111-4111-8111-111111111111"})
    with pytest.raises(Unauthorized):
        r.receive(headers(other), other, correlation_id="c")
    assert r.events.seen == set()
    assert r.receive(headers(event()), event(), correlation_id="c")["duplicate"] is False
    anywhere = registered({"p1": None}, [])
    assert anywhere.receive(headers(other), other, correlation_id="c")["duplicate"] is False


def test_the_portal_registry_setting():
    from shared.config import ConfigurationError, parse_portals

    assert parse_portals(f"p1={TENANT.upper()}|{TENANT};p2=*; ") == {"p1": frozenset({TENANT}), "p2": None}
    assert parse_portals("") == {}
    for bad in ("p1", "p1=", "p 1=*", "p1=not-a-guid", "p1=*|" + TENANT):
        with pytest.raises(ConfigurationError):
            parse_portals(bad)
