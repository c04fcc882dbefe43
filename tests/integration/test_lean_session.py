"""``LeanSession`` puts on the wire exactly what ``requests.Session`` does, and its errors are the
same requests exceptions (so azure-core maps them the same way), against a local server that
records each request's bytes."""
from __future__ import annotations

import json
import re
import socket
import threading
from contextlib import contextmanager

import pytest
import requests
from azure.core.exceptions import ServiceRequestError, ServiceResponseTimeoutError
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest
from hypothesis import given, settings, strategies as st

from shared.adapters.lean_session import LeanSession

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


class RecordingServer:
    """Answers every request on a kept-alive connection with ``reply`` and keeps its raw bytes."""

    def __init__(self, reply: bytes = OK, *, answer: bool = True):
        self.reply, self.answer = reply, answer
        self.requests: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, rest = buffer.partition(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                               if line.lower().startswith(b"content-length:")), 0)
                while len(rest) < length:
                    rest += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + rest[:length])
                buffer = rest[length:]
                if not self.answer:
                    threading.Event().wait(5)
                    return
                conn.sendall(self.reply)

    def close(self) -> None:
        self._stopped = True
        self._listener.close()


@contextmanager
def recording(reply: bytes = OK, *, answer: bool = True):
    server = RecordingServer(reply, answer=answer)
    try:
        yield server
    finally:
        server.close()


def plain_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def sent_by(session: requests.Session, server: RecordingServer, method: str, path: str, **kwargs) -> bytes:
    before = len(server.requests)
    response = session.request(method, server.url + path, timeout=(5, 5), **kwargs)
    if method != "HEAD":
        assert response.content == b"ok"
    return server.requests[before]


@pytest.fixture
def prepare_calls(monkeypatch):
    """How many times ``Session.prepare_request`` ran (the full path does, the direct one not)."""
    calls = []
    original = requests.Session.prepare_request

    def counting(self, request):
        calls.append(request.url)
        return original(self, request)

    monkeypatch.setattr(requests.Session, "prepare_request", counting)
    return calls


_PATH_CHARS = st.sampled_from(list("abcXYZ019-._~!$&'()*+,;=:@/[]") + ["%20", "%27", "%c3%A9", "%41", "%7e", "/.", "/..", "#", " ", "\u00e9"])
_HEADER_NAMES = st.sampled_from(["Accept", "x-ms-date", "x-ms-version", "Authorization", "Content-Type",
                                 "DataServiceVersion", "If-Match", "Prefer", "x-ms-client-request-id"])
_HEADER_VALUES = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e), min_size=1, max_size=40)
_BODIES = st.one_of(st.none(), st.just(b""), st.just(""), st.binary(max_size=300),
                    st.text(max_size=100).filter(lambda s: "\x00" not in s))


@settings(max_examples=60, deadline=None)
@given(method=st.sampled_from(["GET", "PUT", "POST", "PATCH", "DELETE", "MERGE", "HEAD", "get"]),
       path=st.lists(_PATH_CHARS, max_size=30).map(lambda parts: "/" + "".join(parts)),
       query=st.lists(_PATH_CHARS, max_size=10).map(lambda parts: "?" + "".join(parts) if parts else ""),
       headers=st.dictionaries(_HEADER_NAMES, st.one_of(_HEADER_VALUES, st.none()), max_size=6),
       body=_BODIES)
def test_the_direct_path_sends_the_bytes_requests_sends(method, path, query, headers, body):
    with recording() as server:
        lean = sent_by(LeanSession(), server, method, path + query, headers=headers, data=body,
                       allow_redirects=False)
        plain = sent_by(plain_session(), server, method, path + query, headers=headers, data=body,
                        allow_redirects=False)
    assert lean == plain


def test_an_azure_core_request_takes_the_direct_path_and_reads_the_answer(prepare_calls):
    with recording(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nContent-Type: application/json\r\n\r\n"
                   b'{"a": "b"} ') as server:
        transport = RequestsTransport(session=LeanSession(), session_owner=True, use_env_settings=False)
        with transport:
            response = transport.send(HttpRequest("PUT", server.url + "/Profiles(PartitionKey='p',RowKey='r')",
                                                  json={"Name": "é"}, headers={"If-Match": "*"}))
    assert response.status_code == 200 and response.json() == {"a": "b"}
    assert prepare_calls == []
    head, _, sent = server.requests[0].partition(b"\r\n\r\n")
    assert json.loads(sent) == {"Name": "é"} and b"Content-Length: %d" % len(sent) in head


@pytest.mark.parametrize("kwargs", [
    {"data": {"grant_type": "password", "username": "a@b"}},  # a form (msal's token requests)
    {"data": [("a", "1"), ("a", "2")], "headers": {"Content-Type": "text/plain"}},
    {"files": {"f": ("a.txt", b"x")}},
    {"json": {"a": "é"}},
    {"params": {"a": "b c", "d": ["1", "2"]}},
])
def test_forms_files_json_and_params_take_the_direct_path_and_send_the_same(prepare_calls, kwargs):
    with recording() as server:
        lean = sent_by(LeanSession(), server, "POST", "/x?y=1", allow_redirects=False, **kwargs)
        assert prepare_calls == []
        plain = sent_by(plain_session(), server, "POST", "/x?y=1", allow_redirects=False, **kwargs)
    assert without_boundary(lean) == without_boundary(plain)


@pytest.mark.parametrize("kwargs", [
    {"allow_redirects": True},
    {"hooks": {"response": [lambda r, *a, **k: r]}},
    {"cookies": {"a": "b"}},
    {"path": "/x", "userinfo": "user:pass@"},
    {"proxies": {"http": "http://127.0.0.1:9"}, "path": "/"},
    {"auth": ("user", "pass")},
])
def test_anything_else_takes_requests_own_path_and_sends_the_same(prepare_calls, kwargs):
    kwargs = dict(kwargs)
    path = kwargs.pop("path", "/x")
    userinfo = kwargs.pop("userinfo", "")
    kwargs.setdefault("allow_redirects", False)
    if "proxies" in kwargs:  # a proxy changes where the request goes; only the path taken is compared
        with pytest.raises(requests.ConnectionError):
            LeanSession().request("GET", "http://127.0.0.1:9/", timeout=(1, 1), **kwargs)
        assert len(prepare_calls) == 1
        return
    with recording() as server:
        server.url = server.url.replace("://", "://" + userinfo)
        lean = sent_by(LeanSession(), server, "POST", path, **kwargs)
        plain = sent_by(plain_session(), server, "POST", path, **kwargs)
    assert len(prepare_calls) == 2 and lean == plain


def without_boundary(sent: bytes) -> bytes:
    """``sent`` with its multipart boundary (random per request) replaced by a fixed one."""
    found = re.search(rb"boundary=([0-9a-f]+)", sent)
    return sent.replace(found.group(1), b"BOUNDARY") if found else sent


def test_a_cookie_the_server_sets_is_sent_back_as_requests_would(prepare_calls):
    reply = b"HTTP/1.1 200 OK\r\nSet-Cookie: affinity=abc; Path=/\r\nContent-Length: 2\r\n\r\nok"
    with recording(reply) as server:
        session = LeanSession()
        sent_by(session, server, "GET", "/one", allow_redirects=False)
        second = sent_by(session, server, "GET", "/two", allow_redirects=False)
    assert b"Cookie: affinity=abc" in second
    assert prepare_calls == [server.url + "/two"]  # the jar is not empty any more: the full path


def test_an_answer_is_read_at_once_unless_streamed(prepare_calls):
    with recording() as server:
        read = LeanSession().request("GET", server.url + "/r", allow_redirects=False, timeout=(5, 5))
        streamed = LeanSession().request("GET", server.url + "/s", stream=True, allow_redirects=False,
                                         timeout=(5, 5))
        assert read.raw.tell() == 2 and streamed.raw.tell() == 0
        assert streamed.content == b"ok"
    assert prepare_calls == []


def test_a_refused_connection_and_a_read_timeout_are_the_errors_azure_core_maps():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    transport = RequestsTransport(session=LeanSession(), session_owner=True, use_env_settings=False)
    with pytest.raises(ServiceRequestError):
        transport.send(HttpRequest("GET", f"http://127.0.0.1:{port}/x"), connection_timeout=2, read_timeout=2)
    with recording(answer=False) as server:
        with pytest.raises(ServiceResponseTimeoutError):
            transport.send(HttpRequest("GET", server.url + "/slow"), connection_timeout=2, read_timeout=0.3)
