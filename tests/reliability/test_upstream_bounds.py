"""Upstream answers are bounded: one deadline per Validation Test (upstream and Key Vault calls),
a size limit, no DTD, a slow-loris answer ends at the deadline (issue 12, points 3 and 6)."""
import gzip
import socket
import threading
import time

import pytest
import requests

from shared.adapters.upstream_http import MAX_RESPONSE_BYTES, DeadlineExceeded, HostileResponse, UpstreamHttp
from shared.domain.probes import CONNECTION_ERROR, TIMEOUT
from shared.domain.validation_test import deadline, time_left

LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
          + b"".join(b'<!ENTITY lol%d "%s">' % (i, b"&lol%d;" % (i - 1) * 10 if i > 1 else b"&lol;" * 10)
                     for i in range(1, 10))
          + b']><S:Envelope xmlns:S="http://www.w3.org/2003/05/soap-envelope">&lol9;</S:Envelope>')


def serve(kind):
    """A one-connection-at-a-time hostile upstream on a free port: ``kind`` decides the answer."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)

    def answer(conn):
        conn.recv(65536)
        if kind == "trickle":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            for _ in range(100000):
                time.sleep(0.05)
                conn.sendall(b"x")
        elif kind == "big":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (50 * 1024 * 1024))
            chunk = b"x" * 65536
            for _ in range(800):
                conn.sendall(chunk)
        elif kind == "gzip-bomb":
            bomb = gzip.compress(b"\0" * (20 * 1024 * 1024))
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(bomb) + bomb)
        elif kind == "laughs":
            conn.sendall(b"HTTP/1.1 500 Err\r\nContent-Type: application/soap+xml\r\nContent-Length: %d\r\n\r\n"
                         % len(LAUGHS) + LAUGHS)
        elif kind == "silent":
            time.sleep(30)
        elif kind == "ok":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\": true}")

    def loop():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=lambda: _safe(answer, conn), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return server, f"http://127.0.0.1:{server.getsockname()[1]}/"


def _safe(fn, conn):
    try:
        fn(conn)
    except OSError:
        pass
    finally:
        conn.close()


@pytest.fixture
def upstream(request):
    server, url = serve(request.param)
    yield url
    server.close()


def http(timeout=10.0):
    return UpstreamHttp(requests.Session(), timeout=timeout)


@pytest.mark.parametrize("upstream", ["ok"], indirect=True)
def test_a_normal_answer_reads_as_before(upstream):
    assert http().request("GET", upstream).json() == {"a": True}


@pytest.mark.parametrize("upstream", ["trickle", "silent"], indirect=True)
def test_a_slow_answer_ends_at_the_deadline_not_later(upstream):
    started = time.monotonic()
    with deadline(1.0), http().exchange("c", step="s") as ex:
        with pytest.raises(requests.Timeout) as info:
            http().request("GET", upstream)
        assert ex.from_exception(info.value).error_code == TIMEOUT
    assert time.monotonic() - started < 2.5


@pytest.mark.parametrize("upstream", ["big", "gzip-bomb", "laughs"], indirect=True)
def test_hostile_answers_are_refused_as_transport_errors(upstream):
    with http().exchange("c", step="s") as ex:
        with pytest.raises(HostileResponse) as info:
            http().request("GET", upstream)
        assert ex.from_exception(info.value).error_code == CONNECTION_ERROR
    assert MAX_RESPONSE_BYTES <= 1024 * 1024


def test_no_request_starts_after_the_deadline_and_an_outer_deadline_wins():
    with deadline(5.0):
        outer = time_left()
        with deadline(60.0):
            assert time_left() <= outer
    with deadline(0.0):
        with pytest.raises(DeadlineExceeded):
            http().request("GET", "http://127.0.0.1:9/")
    assert time_left() is None


def test_key_vault_calls_keep_to_the_deadline():
    """The Azure SDK transport the app builds (Key Vault, identity) refuses to start past it and
    gives an open call at most the time left."""
    from azure.core.exceptions import AzureError
    from azure.keyvault.secrets import SecretClient

    from shared.adapters.http_session import build_transport
    from tests.inprocess import SETTINGS

    class NoCredential:
        def get_token(self, *scopes, **kw):
            from azure.core.credentials import AccessToken
            return AccessToken("t", int(time.time()) + 3600)

    server, url = serve("silent")
    try:
        client = SecretClient(url.replace("http", "https"), NoCredential(), transport=build_transport(SETTINGS),
                              retry_total=3, retry_backoff_factor=0.2, verify_challenge_resource=False)
        started = time.monotonic()
        with deadline(1.0):
            with pytest.raises(AzureError):
                client.get_secret("x")
        assert time.monotonic() - started < 3.0
    finally:
        server.close()


def test_the_validation_test_gives_service_unavailable_past_its_deadline():
    from shared.domain.probes import ProbeResult
    from shared.domain.validation_test import run_validation_test
    from tests.fakes_validation import FakeAccountProbe
    from shared.domain.validation import ValidationForm
    from shared.domain.profile import Password

    class SlowProbe(FakeAccountProbe):
        def sign_in_modern(self, tenant_id, username, password, *, correlation_id):
            time.sleep(0.3)
            left = time_left()
            assert left is not None and left < 0
            return ProbeResult(ok=False, error_code=TIMEOUT, step="token", requests=0)

    form = ValidationForm(tenant_id="11111111-1111-4111-8111-111111111111", username="a@contoso.onmicrosoft.com",
                          password=Password("Pw-123456!"), mfa_enabled=False)
    outcome = run_validation_test(form, probe=SlowProbe(), reserved_ip_ranges=(), correlation_id="c",
                                  deadline_seconds=0.1)
    assert outcome.message_id == "SERVICE_UNAVAILABLE" and outcome.evidence.step == "token"
