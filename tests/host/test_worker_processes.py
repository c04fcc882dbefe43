"""FUNCTIONS_WORKER_PROCESS_COUNT: functions (sync and async) in several worker processes, as on Azure.

The functions run in other processes here, so these tests look at what comes back (HTTP answers,
output messages, the invocation log), not at ``sample_app.EVENTS``.
"""
from __future__ import annotations

import logging
import os
import re
import signal
import threading
import time

import pytest
import requests

from devtools.local_host import LocalHost
from devtools.local_host.workers import LOOP_THREAD_NAME, RemoteTraceback, WorkerProcessError
from tests.fixtures.local_host import host_json
from tests.host import sample_app
from tests.host.conftest import settings_of
from tests.waiting import wait_until

TWO = {"FUNCTIONS_WORKER_PROCESS_COUNT": "2"}


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for a reaper counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_gone(pids, timeout: float = 10.0) -> bool:
    return wait_until(lambda: all(map(gone, pids)), timeout=timeout, what=f"processes {pids} have exited")


def concurrently(count: int, call) -> list:
    results: list = [None] * count

    def run(i: int) -> None:
        results[i] = call(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.fixture
def http_host(start_local_host, names):
    return start_local_host(sample_app.app, settings=settings_of(names, **TWO, PYTHON_THREADPOOL_THREAD_COUNT="4"),
                            host_config=host_json(functions=["pid", "echo", "html", "boom", "text", "with_context",
                                                             "slow_async", "crash_worker", "enqueue", "async_pid",
                                                             "async_boom", "enqueue_async"]))


def worker_pids_of(host) -> set[int]:
    return {w.pid for w in host._workers.workers}


def test_sync_invocations_run_in_two_worker_processes_each_with_its_thread_pool(http_host, names):
    began = time.monotonic()
    answers = concurrently(8, lambda i: requests.get(f"{http_host.url}/api/pid",
                                                     params={"sleep": "0.6", "setting": "WORK_QUEUE"}))
    elapsed = time.monotonic() - began
    assert [a.status_code for a in answers] == [200] * 8
    pids = {a.json()["pid"] for a in answers}
    assert len(pids) == 2 and os.getpid() not in pids
    assert elapsed < 2.4  # 2 processes x 4 threads: side by side, not 8 x 0.6 s one after another
    assert {a.json()["setting"] for a in answers} == {names["WORK_QUEUE"]}  # app settings are their environment
    records = http_host.invocations.wait_for("pid", 8)
    assert {r.worker_pid for r in records} == pids and all(r.succeeded for r in records)


def test_http_requests_and_responses_convert_as_in_process(http_host):
    echoed = requests.post(f"{http_host.url}/api/echo/t1?a=1", json={"k": "v"}, headers={"x-test": "yes"})
    assert echoed.status_code == 201 and echoed.headers["X-Echo"] == "yes"
    assert echoed.headers["Content-Type"] == "application/vnd.echo+json"  # as in process: no charset
    body = echoed.json()
    assert (body["method"], body["params"], body["route"], body["header"], body["json"]) == \
        ("POST", {"a": "1"}, {"tag": "t1"}, "yes", {"k": "v"})
    html = requests.get(f"{http_host.url}/api/html")
    assert html.headers["Content-Type"] == "text/html; charset=latin-1"
    assert html.content == "<p>é</p>".encode("latin-1") and html.headers["Set-Cookie"].startswith("session=abc")
    assert requests.get(f"{http_host.url}/api/text").text == "plain text"
    context = requests.get(f"{http_host.url}/api/context").json()
    [record] = http_host.invocations.wait_for("with_context")
    assert context["invocation_id"] == record.invocation_id == context["thread_invocation_id"]
    assert requests.get(f"{http_host.url}/api/slow/0").text == "slept"
    assert http_host.invocations.wait_for("slow_async")[0].worker_pid in worker_pids_of(http_host)  # async too


def test_async_invocations_run_in_the_worker_processes_each_on_its_own_loop(http_host):
    """As the Python worker does (azure_functions_worker/dispatcher.py, _handle__invocation_request:
    an async function is awaited on the worker's event loop): in each worker process, on one loop
    thread started once, not in the host process and not in the worker's sync pool."""
    rounds = [concurrently(8, lambda i: requests.get(f"{http_host.url}/api/async-pid", params={"sleep": "0.3"}))
              for _ in range(2)]
    answers = [a for batch in rounds for a in batch]
    assert [a.status_code for a in answers] == [200] * 16
    seen = [a.json() for a in answers]
    pids = {s["pid"] for s in seen}
    assert pids == worker_pids_of(http_host) and len(pids) == 2 and os.getpid() not in pids  # both, not the host
    assert {s["thread"] for s in seen} == {LOOP_THREAD_NAME}  # not a "local-host-worker" pool thread
    for pid in pids:  # one loop (and its one thread) per process, for both rounds
        here = [s for s in seen if s["pid"] == pid]
        assert len({s["loop"] for s in here}) == 1 and len({s["thread_id"] for s in here}) == 1, here
    assert all(s["thread_invocation_id"] == s["invocation_id"] for s in seen)
    records = http_host.invocations.wait_for("async_pid", 16)
    assert all(r.succeeded for r in records) and {r.worker_pid for r in records} == pids
    assert {r.invocation_id for r in records} == {s["invocation_id"] for s in seen}


def test_async_functions_in_a_worker_process_never_take_its_sync_pool(start_local_host, names):
    """The worker's rule inside each worker process: with the one sync thread of both processes busy,
    an async function answers at once and a sync one waits for a thread."""
    host = start_local_host(sample_app.app, settings=settings_of(names, **TWO, PYTHON_THREADPOOL_THREAD_COUNT="1"),
                            host_config=host_json(functions=["slow_sync", "async_pid", "text"]))
    busy = [threading.Thread(target=lambda: requests.get(f"{host.url}/api/sync-slow/2")) for _ in range(2)]
    for t in busy:
        t.start()
    wait_until(lambda: all(len(w.pending) == 1 for w in host._workers.workers), interval=0.01,
               what="one sync invocation in flight in each worker process")
    began = time.monotonic()
    answer = requests.get(f"{host.url}/api/async-pid").json()
    async_took = time.monotonic() - began
    began = time.monotonic()
    assert requests.get(f"{host.url}/api/text").status_code == 200
    sync_took = time.monotonic() - began
    for t in busy:
        t.join()
    assert async_took < 1.0, async_took
    assert answer["pid"] in worker_pids_of(host) and answer["thread"] == LOOP_THREAD_NAME, answer
    assert answer["thread_invocation_id"] == answer["invocation_id"]
    assert sync_took > 0.5, sync_took  # queued behind a busy thread


def test_an_exception_in_an_async_function_in_a_worker_process_is_a_failed_invocation(http_host):
    response = requests.get(f"{http_host.url}/api/async-boom")
    assert (response.status_code, response.content) == (500, b"")
    [record] = http_host.invocations.wait_for("async_boom")
    assert not record.succeeded and isinstance(record.error, ValueError)
    assert record.worker_pid in worker_pids_of(http_host)
    assert str(record.error) == f"async kaboom in {record.worker_pid}"
    remote = record.error.__cause__
    assert isinstance(remote, RemoteTraceback)
    assert f"(in worker process {record.worker_pid})" in str(remote)
    assert "in async_boom" in str(remote) and "ValueError: async kaboom" in str(remote)


def test_an_async_function_s_output_binding_is_sent_by_the_host(http_host, queues, names):
    assert requests.post(f"{http_host.url}/api/enqueue-async", data=b"from-async").status_code == 202
    [text] = queues.wait_for_texts(names["OUT_QUEUE"], 1)
    body, pid = text.rsplit("@", 1)
    assert body == "from-async" and int(pid) in worker_pids_of(http_host)


def test_a_worker_process_that_dies_fails_its_async_invocations_and_is_replaced(http_host):
    answers = []
    caller = threading.Thread(target=lambda: answers.append(
        requests.get(f"{http_host.url}/api/async-pid", params={"sleep": "30"})))
    caller.start()
    wait_until(lambda: any(w.pending for w in http_host._workers.workers), interval=0.01,
               what="the async invocation in flight in a worker process")
    [doomed] = [w for w in http_host._workers.workers if w.pending]
    doomed.kill()
    caller.join(15)
    assert answers and answers[0].status_code == 500
    [record] = http_host.invocations.wait_for("async_pid")
    assert isinstance(record.error, WorkerProcessError) and str(doomed.pid) in str(record.error)
    wait_until(lambda: doomed.pid not in worker_pids_of(http_host) and len(worker_pids_of(http_host)) == 2)
    after = concurrently(6, lambda i: requests.get(f"{http_host.url}/api/async-pid", params={"sleep": "0.3"}))
    assert [a.status_code for a in after] == [200] * 6
    assert {a.json()["pid"] for a in after} == worker_pids_of(http_host)


def test_an_exception_in_a_worker_process_is_a_failed_invocation(http_host, caplog):
    with caplog.at_level(logging.INFO, logger="devtools.local_host"):
        response = requests.get(f"{http_host.url}/api/boom")
    assert (response.status_code, response.content) == (500, b"")
    [record] = http_host.invocations.wait_for("boom")
    assert not record.succeeded and isinstance(record.error, RuntimeError) and str(record.error) == "kaboom"
    assert isinstance(record.error.__cause__, RemoteTraceback) and record.worker_pid != os.getpid()
    [line] = [r for r in caplog.records if "Functions.boom" in r.getMessage()]
    assert "Failed" in line.getMessage() and line.levelno == logging.ERROR
    # the output set before the failure is not sent
    assert requests.post(f"{http_host.url}/api/enqueue?fail=1", data=b"lost").status_code == 500


def test_a_worker_process_that_dies_fails_its_invocation_and_is_replaced(http_host):
    first = {requests.get(f"{http_host.url}/api/pid").json()["pid"] for _ in range(4)}
    assert requests.get(f"{http_host.url}/api/crash-worker").status_code == 500
    [record] = http_host.invocations.wait_for("crash_worker")
    assert isinstance(record.error, WorkerProcessError)
    answers = concurrently(6, lambda i: requests.get(f"{http_host.url}/api/pid", params={"sleep": "0.3"}))
    assert [a.status_code for a in answers] == [200] * 6
    after = {a.json()["pid"] for a in answers}
    assert len(after) == 2 and len(after - first) == 1  # one new process took the dead one's place


def test_queue_trigger_and_output_binding_spread_over_the_processes(start_local_host, queues, names):
    host = start_local_host(sample_app.app, settings=settings_of(names, **TWO),
                            host_config=host_json(functions=["work"]))
    bodies = {f"pid:{names['tag']}-{i}:0.3" for i in range(8)}
    for body in sorted(bodies):
        queues.send(names["WORK_QUEUE"], body)

    texts = queues.wait_for_texts(names["OUT_QUEUE"], 8, timeout=15)
    assert {t.rsplit("@", 1)[0] for t in texts} == bodies
    pids = {int(t.rsplit("@", 1)[1]) for t in texts}
    assert len(pids) == 2 and os.getpid() not in pids
    records = host.invocations.wait_for("work", 8)
    assert all(r.succeeded for r in records) and {r.worker_pid for r in records} == pids
    wait_until(lambda: queues.total(names["WORK_QUEUE"]) == 0, timeout=5)
    assert queues.total(names["WORK_QUEUE"]) == 0


def test_a_failing_message_still_goes_to_poison(start_local_host, queues, names):
    host = start_local_host(sample_app.app, settings=settings_of(names, **TWO),
                            host_config=host_json(functions=["work"], maxDequeueCount=2))
    body = f"fail:{names['tag']}"
    queues.send(names["WORK_QUEUE"], body)

    assert queues.wait_for_texts(names["WORK_QUEUE"] + "-poison", 1) == [body]
    failures = host.invocations.wait_for("work", 2, succeeded=False)
    assert all(str(r.error) == f"failing on purpose: {body}" for r in failures)
    wait_until(lambda: queues.total(names["WORK_QUEUE"]) == 0, timeout=5)  # copied to poison first, then deleted
    assert queues.total(names["WORK_QUEUE"]) == 0
    assert queues.texts(names["OUT_QUEUE"]) == []


def test_stop_mid_batch_finishes_in_flight_messages_loses_none_and_ends_the_processes(
        start_local_host, queues, names):
    bodies = {f"pid:{names['tag']}-{i}:0.8" for i in range(6)}
    for body in sorted(bodies):
        queues.send(names["WORK_QUEUE"], body)
    host = start_local_host(sample_app.app, settings=settings_of(names, **TWO),
                            host_config=host_json(functions=["work"], batchSize=4, newBatchThreshold=0))
    wait_until(lambda: len(queues.raw(names["WORK_QUEUE"])) <= 2, timeout=15, interval=0.02)  # 4 fetched
    worker_pids = [w.pid for w in host._workers.workers]

    assert host.stop(grace=5) is True
    done = {t.rsplit("@", 1)[0] for t in queues.texts(names["OUT_QUEUE"])}
    assert len(done) == 4  # the whole batch finished and its outputs were sent
    assert set(queues.texts(names["WORK_QUEUE"])) == bodies - done  # the rest is still queued
    assert queues.total(names["WORK_QUEUE"]) == 2
    assert all(map(gone, worker_pids))


def test_the_setting_is_validated():
    for value in ("0", "11", "two"):
        with pytest.raises(ValueError, match="FUNCTIONS_WORKER_PROCESS_COUNT"):
            LocalHost(sample_app.app, settings={"FUNCTIONS_WORKER_PROCESS_COUNT": value},
                      host_config=host_json(functions=["text"]))


def test_the_default_keeps_functions_in_the_host_process_and_async_ones_on_its_loop(start_local_host, names):
    host = start_local_host(sample_app.app, settings=settings_of(names),
                            host_config=host_json(functions=["pid", "async_pid"]))
    assert requests.get(f"{host.url}/api/pid").json()["pid"] == os.getpid()
    answer = requests.get(f"{host.url}/api/async-pid").json()
    assert answer["pid"] == os.getpid() and answer["thread"] == host._thread.name  # the host's loop thread
    assert host._workers is None


def _worker_pids(output: str) -> list[int]:
    match = re.search(r"2 worker processes \(PIDs (\d+), (\d+)\)", output)
    assert match, output
    return [int(match.group(1)), int(match.group(2))]


def test_cli_sigterm_drains_the_worker_processes_and_ends_them(start_local_host_process, tmp_path, queues, names):
    from tests.host.test_process import APP, write_project

    settings, host_file = write_project(tmp_path, values={}, functions=["work", "pid"])
    proc = start_local_host_process(APP, env={**settings_of(names), **TWO}, settings=settings, host_json=host_file,
                                    extra_args=["--log-level", "DEBUG"])  # for the 'Executing' line
    worker_pids = _worker_pids(proc.output)
    body = f"pid:{names['tag']}:1"
    queues.send(names["WORK_QUEUE"], body)
    answers = []
    caller = threading.Thread(target=lambda: answers.append(
        requests.get(f"{proc.url}/api/pid", params={"sleep": "1.2"})))
    caller.start()
    wait_until(lambda: not queues.raw(names["WORK_QUEUE"])  # until it is fetched and the request arrived
               and "Executing 'Functions.pid'" in proc.output)

    assert proc.stop() == 0
    caller.join()
    assert answers[0].status_code == 200 and answers[0].json()["pid"] in worker_pids
    [text] = queues.texts(names["OUT_QUEUE"])
    assert text.rsplit("@", 1) == [body, text.rsplit("@", 1)[1]] and int(text.rsplit("@", 1)[1]) in worker_pids
    assert queues.total(names["WORK_QUEUE"]) == 0
    assert wait_gone(worker_pids, 2)


def test_killing_the_host_leaves_no_orphan_worker_process(start_local_host_process, tmp_path, names):
    from tests.host.test_process import APP, write_project

    settings, host_file = write_project(tmp_path, values={}, functions=["pid"])
    proc = start_local_host_process(APP, env={**settings_of(names), **TWO}, settings=settings, host_json=host_file)
    worker_pids = _worker_pids(proc.output)
    assert not any(map(gone, worker_pids))
    proc.process.send_signal(signal.SIGKILL)
    proc.process.wait(10)
    assert wait_gone(worker_pids, 10)
