"""Queue trigger and queue output binding against real Azurite, with host.json semantics."""
from __future__ import annotations

import base64
import logging
import time
from datetime import datetime, timedelta, timezone

import requests

from devtools.local_host.queues import Backoff
from tests.fixtures.local_host import LOCAL_KEY, host_json
from tests.host import sample_app
from tests.host.conftest import settings_of
from tests.waiting import wait_until

EVENTS = sample_app.EVENTS


def wait_started(bodies: set[str], count: int, timeout: float = 10.0) -> set[str]:
    """Bodies (of ``bodies``) whose invocation has started, once there are ``count`` of them."""
    def started_enough() -> set[str]:
        started = {e["body"] for e in EVENTS.of("work") if e["body"] in bodies}
        assert len(started) >= count, started
        return started

    started = wait_until(started_enough, timeout=timeout, interval=0.02)
    assert len(started) == count, started
    return started


def wait_for_marker(queues, names, seconds: int = 2) -> None:
    """Send a marker (its own tag) that becomes visible ``seconds`` from now, and wait until it has
    been processed: the host has polled the queue since then, so a message of the test that would
    have come back (visibilityTimeout is 1 s) has been seen again by now."""
    marker = f"{names['tag']}-marker"
    queues.send_after(names["WORK_QUEUE"], f"ok:{marker}", seconds)
    EVENTS.wait("work-done", tag=marker, timeout=seconds + 10)


def test_a_message_is_delivered_once_as_a_queue_message_and_deleted(start_local_host, queues, names):
    host = start_local_host(sample_app.app, settings=settings_of(names), host_config=host_json(functions=["work"]))
    sent_at = datetime.now(timezone.utc)
    message_id = queues.send(names["WORK_QUEUE"], f"ok:{names['tag']}")

    [event] = EVENTS.wait("work-done", tag=names["tag"])
    [seen] = EVENTS.of("work", tag=names["tag"])
    assert seen["id"] == message_id
    assert seen["body"] == f"ok:{names['tag']}"  # base64 on the wire, decoded for the function
    assert seen["dequeue_count"] == 1
    assert abs(seen["insertion_time"] - sent_at) < timedelta(seconds=5)
    assert seen["expiration_time"] > seen["insertion_time"] + timedelta(days=6)
    assert seen["time_next_visible"] > sent_at  # hidden while it is processed
    assert seen["pop_receipt"]

    host.invocations.wait_for("work", succeeded=True)
    wait_until(lambda: queues.total(names["WORK_QUEUE"]) == 0, timeout=5)
    assert queues.total(names["WORK_QUEUE"]) == 0  # deleted, not merely hidden
    wait_for_marker(queues, names)  # later than visibilityTimeout: a message left behind would be seen again
    assert len(EVENTS.of("work", tag=names["tag"])) == 1


def test_a_failing_message_goes_to_poison_after_exactly_max_dequeue_count_tries(start_local_host, queues, names,
                                                                               caplog):
    caplog.set_level(logging.WARNING, logger="devtools.local_host")
    start_local_host(sample_app.app, settings=settings_of(names),
                     host_config=host_json(functions=["work"], maxDequeueCount=3, visibilityTimeout="00:00:01"))
    body = f"fail:{names['tag']}"
    queues.send(names["WORK_QUEUE"], body)
    poison = names["WORK_QUEUE"] + "-poison"

    EVENTS.wait("work", 2, tag=names["tag"])
    assert queues.raw(poison) == []  # not before the last try (the 3rd comes ≥ 1 s later)
    tries = EVENTS.wait("work", 3, tag=names["tag"])
    assert queues.wait_for_texts(poison, 1) == [body]
    assert [t["dequeue_count"] for t in tries] == [1, 2, 3]
    assert "reached MaxDequeueCount of 3" in caplog.text  # moved when the 3rd try failed
    assert queues.total(names["WORK_QUEUE"]) == 0
    assert queues.raw(poison)[0].content == base64.b64encode(body.encode()).decode()  # copied as is
    wait_for_marker(queues, names)  # no 4th try: the host has polled past when one would be visible
    assert len(EVENTS.of("work", tag=names["tag"])) == 3


def test_visibility_timeout_delays_the_retry(start_local_host, queues, names):
    start_local_host(sample_app.app, settings=settings_of(names),
                     host_config=host_json(functions=["work"], maxDequeueCount=2, visibilityTimeout="00:00:02"))
    queues.send(names["WORK_QUEUE"], f"fail:{names['tag']}")

    first, second = EVENTS.wait("work", 2, tag=names["tag"], timeout=10)
    gap = second["at"] - first["at"]
    assert gap >= 2.0, gap
    assert gap < 4.0, gap  # the failure released the message; it did not wait for the 10-minute lease


def test_a_message_fetched_beyond_max_dequeue_count_goes_to_poison_without_an_invocation(
        start_local_host, queues, names):
    body = f"ok:{names['tag']}"
    queues.send(names["WORK_QUEUE"], body)
    client = queues.client(names["WORK_QUEUE"])
    for _ in range(3):  # as if three hosts had crashed mid-invocation
        [message] = client.receive_messages(visibility_timeout=30, max_messages=1)
        client.update_message(message.id, pop_receipt=message.pop_receipt, visibility_timeout=0)
    start_local_host(sample_app.app, settings=settings_of(names),
                     host_config=host_json(functions=["work"], maxDequeueCount=2))

    assert queues.wait_for_texts(names["WORK_QUEUE"] + "-poison", 1) == [body]
    assert EVENTS.of("work", tag=names["tag"]) == []


def test_content_that_is_not_base64_goes_to_poison_unprocessed(start_local_host, queues, names):
    start_local_host(sample_app.app, settings=settings_of(names), host_config=host_json(functions=["work"]))
    queues.client(names["WORK_QUEUE"]).create_queue()
    queues.client(names["WORK_QUEUE"]).send_message(f"ok:{names['tag']} is not base64!")

    wait_until(lambda: queues.raw(names["WORK_QUEUE"] + "-poison"))
    assert [m.content for m in queues.raw(names["WORK_QUEUE"] + "-poison")] == [f"ok:{names['tag']} is not base64!"]
    assert EVENTS.of("work", tag=names["tag"]) == []


def test_a_str_annotated_async_trigger_gets_the_decoded_text(start_local_host, queues, names):
    host = start_local_host(sample_app.app, settings=settings_of(names),
                            host_config=host_json(functions=["text_message"]))
    queues.send(names["TEXT_QUEUE"], f"héllo {names['tag']}")
    [event] = EVENTS.wait("text", body=f"héllo {names['tag']}")
    assert event["type"] == "str"
    assert host.invocations.wait_for("text_message")[0].succeeded


def test_output_binding_sends_base64_messages_only_when_the_function_succeeds(start_local_host, queues, names):
    host = start_local_host(sample_app.app, settings=settings_of(names),
                            host_config=host_json(functions=["enqueue", "enqueue_many"]))
    out = names["OUT_QUEUE"]  # does not exist yet: the binding creates it

    assert requests.post(f"{host.url}/api/enqueue?fail=1", data="lost".encode()).status_code == 500
    assert requests.post(f"{host.url}/api/enqueue", data="héllo".encode()).status_code == 202
    assert requests.post(f"{host.url}/api/enqueue-many", json=["a", "b", "c"]).status_code == 202

    raw = [m.content for m in queues.raw(out)]
    assert raw == [base64.b64encode("héllo".encode()).decode(), "YQ==", "Yg==", "Yw=="]
    assert queues.texts(out) == ["héllo", "a", "b", "c"]


def test_queue_trigger_output_is_not_sent_when_the_function_fails(start_local_host, queues, names):
    host = start_local_host(sample_app.app, settings=settings_of(names),
                            host_config=host_json(functions=["work"], maxDequeueCount=1))
    queues.send(names["WORK_QUEUE"], f"fail:{names['tag']}")
    queues.send(names["WORK_QUEUE"], f"ok:{names['tag']}")

    assert queues.wait_for_texts(names["WORK_QUEUE"] + "-poison", 1) == [f"fail:{names['tag']}"]
    EVENTS.wait("work-done", tag=names["tag"])
    assert queues.wait_for_texts(names["OUT_QUEUE"], 1) == [f"done:ok:{names['tag']}"]
    host.invocations.wait_for("work", 2)  # both finished: an invocation's outputs are sent before it ends
    wait_until(lambda: queues.total(names["WORK_QUEUE"]) == 0)  # and neither message comes back
    assert queues.texts(names["OUT_QUEUE"]) == [f"done:ok:{names['tag']}"]


def test_batch_size_and_new_batch_threshold_bound_concurrency(start_local_host, queues, names):
    for i in range(7):
        queues.send(names["WORK_QUEUE"], f"sleep:{names['tag']}:0.4")
    start_local_host(sample_app.app, settings=settings_of(names, PYTHON_THREADPOOL_THREAD_COUNT="10"),
                     host_config=host_json(functions=["work"], batchSize=2, newBatchThreshold=1))

    EVENTS.wait("work-done", 7, tag=names["tag"], timeout=15)
    starts = sorted(e["at"] for e in EVENTS.of("work", tag=names["tag"]))
    ends = sorted(e["at"] for e in EVENTS.of("work-done", tag=names["tag"]))
    running = peak = 0
    for _, delta in sorted([(s, 1) for s in starts] + [(e, -1) for e in ends]):
        running += delta
        peak = max(peak, running)
    assert 2 <= peak <= 3  # parallel, but never more than batchSize + newBatchThreshold


def test_lease_is_renewed_while_a_long_invocation_runs(start_local_host, queues, names):
    start_local_host(sample_app.app, settings=settings_of(names), host_config=host_json(functions=["work"]),
                     message_lease=2)
    queues.send(names["WORK_QUEUE"], f"sleep:{names['tag']}:3.2")

    EVENTS.wait("work-done", tag=names["tag"], timeout=10)
    assert len(EVENTS.of("work", tag=names["tag"])) == 1  # not redelivered when the 2 s lease ran out


def test_stop_lets_in_flight_messages_finish_and_leaves_the_rest_queued(start_local_host, queues, names):
    bodies = {f"sleep:{names['tag']}-{i}:0.8" for i in range(6)}
    for body in sorted(bodies):  # all queued before the host starts, so the first batch is full
        queues.send(names["WORK_QUEUE"], body)
    host = start_local_host(sample_app.app, settings=settings_of(names, PYTHON_THREADPOOL_THREAD_COUNT="8"),
                            host_config=host_json(functions=["work"], batchSize=4, newBatchThreshold=0))
    started = wait_started(bodies, 4)

    assert host.stop(grace=5) is True
    done = {e["body"] for e in EVENTS.of("work-done") if e["body"] in bodies}
    assert done == started and len(done) == 4  # the whole batch finished
    remaining = set(queues.texts(names["WORK_QUEUE"]))
    assert remaining == bodies - done  # the rest was never fetched and is still there
    assert queues.total(names["WORK_QUEUE"]) == 2  # finished ones were deleted


def test_stop_after_the_grace_period_gives_unfinished_messages_back(start_local_host, queues, names):
    bodies = {f"sleep:{names['tag']}-{i}:2.5" for i in range(3)}
    for body in sorted(bodies):
        queues.send(names["WORK_QUEUE"], body)
    host = start_local_host(sample_app.app, settings=settings_of(names), host_config=host_json(functions=["work"]))
    wait_started(bodies, 3)

    stopped = time.monotonic()
    assert host.stop(grace=0.3) is False
    assert time.monotonic() - stopped < 5
    assert not {e["body"] for e in EVENTS.of("work-done") if e["body"] in bodies}  # none had finished
    back = queues.raw(names["WORK_QUEUE"])  # visible at once, not after the 10-minute lease
    assert {base64.b64decode(m.content).decode() for m in back} == bodies
    assert all(m.dequeue_count == 1 for m in back)


def test_admin_api_runs_a_queue_function_with_the_input_as_body(start_local_host, queues, names):
    host = start_local_host(sample_app.app, settings=settings_of(names), host_config=host_json(functions=["work"]))
    url = f"{host.url}/admin/functions/work"

    assert requests.post(url, json={"input": f"ok:{names['tag']}"}).status_code == 401
    assert requests.post(url, json={"input": "x"}, headers={"x-functions-key": "wrong"}).status_code == 401
    assert requests.post(f"{host.url}/admin/functions/nope", json={},
                         headers={"x-functions-key": LOCAL_KEY}).status_code == 404
    response = requests.post(url, json={"input": f"ok:{names['tag']}"}, headers={"x-functions-key": LOCAL_KEY})
    assert response.status_code == 202

    [event] = EVENTS.wait("work-done", tag=names["tag"])
    assert event["body"] == f"ok:{names['tag']}"
    assert queues.raw(names["WORK_QUEUE"]) == []  # invoked directly, no message involved


def test_fire_in_process_returns_the_invocation_record(start_local_host, names):
    host = start_local_host(sample_app.app, settings=settings_of(names), host_config=host_json(functions=["work"]))
    record = host.fire("work", f"fail:{names['tag']}").result(10)
    assert record.succeeded is False and isinstance(record.error, RuntimeError)
    assert host.fire("work", f"ok:{names['tag']}").result(10).succeeded is True


def test_polling_back_off_grows_up_to_max_polling_interval_and_resets():
    backoff = Backoff(maximum=2.0)
    delays = [backoff.next(found=False) for _ in range(8)]
    assert delays == sorted(delays) and delays[0] < 0.4 and delays[-1] == 2.0
    assert backoff.next(found=True) == 0.1  # a message was found: poll again soon


def test_an_idle_queue_is_still_polled_every_max_polling_interval(start_local_host, queues, names):
    start_local_host(sample_app.app, settings=settings_of(names),
                     host_config=host_json(functions=["work"], maxPollingInterval="00:00:00.3"))
    queues.client(names["WORK_QUEUE"]).create_queue()
    time.sleep(1.2)  # long enough for the back-off to reach its maximum
    sent = time.monotonic()
    queues.send(names["WORK_QUEUE"], f"ok:{names['tag']}")
    [event] = EVENTS.wait("work", tag=names["tag"])
    assert event["at"] - sent < 0.8
