"""HTTP triggers through the local host: routes, methods, auth levels, request and response."""
from __future__ import annotations

import logging
import threading
import time

import pytest
import requests

from tests.fixtures.local_host import LOCAL_KEY, host_json
from tests.host import sample_app
from tests.host.conftest import settings_of

HTTP_FUNCTIONS = [fn.get_function_name() for fn in sample_app.app.get_functions() if fn.is_http_function()]


@pytest.fixture
def host(start_local_host, names):
    return start_local_host(sample_app.app, settings=settings_of(names),
                            host_config=host_json(functions=HTTP_FUNCTIONS))


def get(host, path: str, **kwargs) -> requests.Response:
    return requests.get(host.url + path, **kwargs)


@pytest.mark.parametrize("path, function, route", [
    ("/api/items/42", "item_by_number", {"id": "42"}),  # constrained parameter wins over {name}
    ("/api/items/-7", "item_by_number", {"id": "-7"}),
    ("/api/items/abc", "item_by_name", {"name": "abc"}),
    ("/api/items/2147483648", "item_by_name", {"name": "2147483648"}),  # beyond int32: not {id:int}
    ("/API/Items/42/", "item_by_number", {"id": "42"}),  # literals are case-insensitive, trailing / ok
])
def test_route_parameters_constraints_and_precedence(host, path, function, route):
    response = get(host, path)
    assert response.status_code == 200
    assert response.json() == {"function": function, "route": route}


@pytest.mark.parametrize("path, status, route", [
    ("/api/things/0f8fad5b-d9cb-469f-a165-70867728950e", 200, {"id": "0f8fad5b-d9cb-469f-a165-70867728950e"}),
    ("/api/things/0f8fad5bd9cb469fa16570867728950e", 200, {"id": "0f8fad5bd9cb469fa16570867728950e"}),
    ("/api/things/not-a-guid", 404, None),
    ("/api/users/alice", 200, {"name": "alice"}),  # optional {tab?} left out
    ("/api/users/alice/settings", 200, {"name": "alice", "tab": "settings"}),
    ("/api/users/al1ce", 404, None),  # :alpha
    ("/api/users/alice/settings/more", 404, None),
    ("/api/files", 200, {}),  # catch-all may be empty
    ("/api/files/a/b%20c/d.txt", 200, {"path": "a/b c/d.txt"}),
])
def test_guid_alpha_optional_and_catch_all(host, path, status, route):
    response = get(host, path)
    assert response.status_code == status
    if route is not None:
        assert response.json()["route"] == route


def assert_host_answer(response: requests.Response, status: int) -> None:
    """The host's own answer: the status, ``Content-Length: 0``, no body, no Content-Type, no
    x-correlation-id (the real host logs its request id, it does not send one)."""
    assert response.status_code == status
    assert response.content == b""
    if response.request.method != "HEAD":
        assert response.headers.get("Content-Length") == "0"
    assert "Content-Type" not in response.headers and "x-correlation-id" not in response.headers
    assert "Allow" not in response.headers


def test_unknown_route_and_wrong_method_are_the_hosts_empty_404(host):
    """A method no function takes is 404 like an unknown path, as on Azure (the host's routes
    carry their methods as a route constraint: Azure/azure-functions-host#10098, #11625)."""
    assert_host_answer(get(host, "/api/nowhere"), 404)
    assert_host_answer(get(host, "/items/42"), 404)  # outside the route prefix
    assert_host_answer(requests.put(host.url + "/api/items/42"), 404)
    assert_host_answer(requests.head(host.url + "/api/items/42"), 404)  # HEAD is not GET
    assert_host_answer(requests.get(host.url + "/api/echo/x"), 404)
    assert requests.delete(host.url + "/api/items/42").status_code == 204
    assert get(host, "/api/items/42").status_code == 200


def test_missing_key_is_the_hosts_empty_401(host):
    assert_host_answer(get(host, "/api/secure/function"), 401)
    assert_host_answer(get(host, "/api/secure/admin", headers={"x-functions-key": "wrong"}), 401)
    assert_host_answer(requests.get(host.url + "/admin/functions"), 401)


def test_a_body_over_the_hosts_limit_is_its_empty_413(start_local_host, names, monkeypatch):
    from devtools.local_host import web as front

    monkeypatch.setattr(front, "MAX_REQUEST_BYTES", 1024)
    small = start_local_host(sample_app.app, settings=settings_of(names),
                             host_config=host_json(functions=HTTP_FUNCTIONS))
    assert_host_answer(requests.put(small.url + "/api/echo/x", data=b"x" * 4096), 413)
    assert requests.put(small.url + "/api/echo/x", json={"x": "x" * 400}).status_code == 201


def test_custom_headers_from_host_json_reach_every_answer(start_local_host, names):
    config = host_json(functions=HTTP_FUNCTIONS)
    config["extensions"]["http"]["customHeaders"] = {"X-Content-Type-Options": "nosniff",
                                                     "Content-Type": "text/x-never"}
    custom = start_local_host(sample_app.app, settings=settings_of(names), host_config=config)
    for response in (requests.get(custom.url + "/api/nowhere"), requests.get(custom.url + "/api/secure/function"),
                     requests.get(custom.url + "/api/items/42")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert requests.get(custom.url + "/api/items/42").headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("path, level", [("/api/secure/function", "function"),
                                         ("/api/secure/default", "function"),  # app default
                                         ("/api/secure/admin", "admin")])
def test_auth_levels_need_the_key_in_header_or_code(host, path, level):
    assert get(host, path).status_code == 401
    assert get(host, path, headers={"x-functions-key": "wrong"}).status_code == 401
    assert get(host, path, params={"code": "wrong"}).status_code == 401
    assert get(host, path, params={"code": ""}).status_code == 401
    assert get(host, path, headers={"x-functions-key": LOCAL_KEY}).status_code == 200
    assert get(host, path, params={"code": LOCAL_KEY}).status_code == 200


def test_anonymous_needs_no_key(host):
    assert get(host, "/api/text").status_code == 200


def test_without_a_key_setting_protected_routes_answer_401(start_local_host, names):
    host = start_local_host(sample_app.app, settings=settings_of(names, LOCAL_FUNCTION_KEY=""),
                            host_config=host_json(functions=["secure_function", "text"]))
    assert get(host, "/api/secure/function", params={"code": ""}).status_code == 401
    assert get(host, "/api/secure/function", params={"code": LOCAL_KEY}).status_code == 401
    assert get(host, "/api/text").status_code == 200


def test_request_fields_reach_the_function_and_the_response_comes_back(host):
    response = requests.post(host.url + "/api/echo/t1?a=1&a=2&b=x", json={"k": [1, 2]},
                             headers={"X-Test": "hdr"})
    assert response.status_code == 201
    assert response.headers["X-Echo"] == "yes"
    assert response.headers["Content-Type"] == "application/vnd.echo+json"  # no charset: not text/*
    body = response.json()
    assert body["method"] == "POST"
    assert body["url"] == host.url + "/api/echo/t1?a=1&a=2&b=x"
    assert body["params"] == {"a": "1,2", "b": "x"}
    assert body["route"] == {"tag": "t1"}
    assert body["header"] == "hdr"
    assert body["json"] == {"k": [1, 2]}


def test_mimetype_charset_cookies_and_str_return(host):
    html = get(host, "/api/html")
    assert html.headers["Content-Type"] == "text/html; charset=latin-1"
    assert html.content == "<p>é</p>".encode("latin-1")
    assert html.headers["Set-Cookie"].startswith("session=abc")
    text = get(host, "/api/text")
    assert (text.status_code, text.headers["Content-Type"], text.text) == (200, "text/plain; charset=utf-8",
                                                                           "plain text")


def test_unhandled_exception_is_500_with_empty_body_and_a_logged_error(host, caplog):
    with caplog.at_level(logging.ERROR, logger="devtools.local_host"):
        response = get(host, "/api/boom")
    assert_host_answer(response, 500)
    [record] = [r for r in caplog.records if "Functions.boom" in r.getMessage()]
    assert "Failed" in record.getMessage() and "kaboom" in str(record.exc_info[1])
    assert host.invocations.wait_for("boom")[0].succeeded is False


def test_bytes_return_fails_like_the_worker(host):
    assert get(host, "/api/bytes").status_code == 500  # HttpResponseConverter cannot encode bytes


def test_context_carries_the_invocation_id(host):
    body = get(host, "/api/context").json()
    [record] = host.invocations.wait_for("with_context")
    assert body["invocation_id"] == record.invocation_id == body["thread_invocation_id"]
    assert body["function_name"] == "with_context"
    assert body["trace_parent"].startswith("00-")


def test_one_log_line_per_invocation(host, caplog):
    with caplog.at_level(logging.INFO, logger="devtools.local_host"):
        get(host, "/api/text")
    [line] = [r.getMessage() for r in caplog.records if "Functions.text" in r.getMessage()]
    assert "Succeeded" in line and "Trigger=httpTrigger" in line and "Duration=" in line and "Id=" in line


@pytest.mark.parametrize("route", ["sync-slow", "slow"])
def test_invocations_run_concurrently(start_local_host, names, route):
    host = start_local_host(sample_app.app, settings=settings_of(names, PYTHON_THREADPOOL_THREAD_COUNT="4"),
                            host_config=host_json(functions=["slow_sync", "slow_async"]))
    statuses = []
    threads = [threading.Thread(target=lambda: statuses.append(get(host, f"/api/{route}/0.6").status_code))
               for _ in range(4)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 4
    assert time.monotonic() - began < 1.5  # 4 × 0.6 s side by side, not 2.4 s one after another


def test_async_functions_run_on_the_loop_not_in_the_sync_pool(start_local_host, names):
    """As the Python worker does (azure_functions_worker/dispatcher.py: an async function is awaited on
    the worker's loop, a sync one goes to ``run_in_executor(self._sync_call_tp, ...)``): with the one
    sync thread busy, an async function answers at once and a sync one waits for the thread."""
    host = start_local_host(sample_app.app, settings=settings_of(names, PYTHON_THREADPOOL_THREAD_COUNT="1"),
                            host_config=host_json(functions=["slow_sync", "async_context", "text"]))
    tag = names["tag"]
    busy = threading.Thread(target=lambda: get(host, f"/api/sync-slow/1.5?tag={tag}"))
    busy.start()
    sample_app.EVENTS.wait("sync-slow", tag=tag)  # the only sync thread is taken
    began = time.monotonic()
    answer = get(host, "/api/async-context").json()
    async_took = time.monotonic() - began
    began = time.monotonic()
    assert get(host, "/api/text").status_code == 200
    sync_took = time.monotonic() - began
    busy.join()
    assert async_took < 0.5, async_took
    assert not answer["thread"].startswith("local-host-worker"), answer
    assert answer["thread_invocation_id"] == answer["invocation_id"]
    assert sync_took > 0.5, sync_took  # queued behind the busy thread


def test_route_prefix_comes_from_host_json(start_local_host, names):
    host = start_local_host(sample_app.app, settings=settings_of(names),
                            host_config=host_json(functions=["text"], route_prefix=""))
    assert get(host, "/text").status_code == 200
    assert get(host, "/api/text").status_code == 404


def test_stop_lets_an_in_flight_request_finish(start_local_host, names):
    host = start_local_host(sample_app.app, settings=settings_of(names),
                            host_config=host_json(functions=["slow_sync"]))
    statuses = []
    tag = names["tag"]
    caller = threading.Thread(target=lambda: statuses.append(get(host, f"/api/sync-slow/0.8?tag={tag}").status_code))
    caller.start()
    sample_app.EVENTS.wait("sync-slow", tag=tag)  # the request is in flight
    assert host.stop(grace=5) is True
    caller.join()
    assert statuses == [200]
    with pytest.raises(requests.ConnectionError):
        get(host, "/api/sync-slow/0")


def test_admin_status_and_ping(host):
    assert requests.get(host.url + "/admin/host/ping").status_code == 200
    assert requests.get(host.url + "/admin/host/status").status_code == 401
    status = requests.get(host.url + "/admin/host/status", headers={"x-functions-key": LOCAL_KEY})
    assert status.json()["state"] == "Running"
    listed = requests.get(host.url + "/admin/functions", params={"code": LOCAL_KEY}).json()
    assert {f["name"] for f in listed} == set(HTTP_FUNCTIONS)
    assert requests.post(host.url + "/admin/functions/text", json={},
                         headers={"x-functions-key": LOCAL_KEY}).status_code == 400  # HTTP: use its route


def test_a_busy_port_fails_the_start(start_local_host, names):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(OSError):
            start_local_host(sample_app.app, settings=settings_of(names), host_config=host_json(functions=["text"]),
                             port=busy.getsockname()[1])
