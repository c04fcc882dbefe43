"""Runtime faults: latency, 429 with Retry-After, 503, resets, outages and per-user SharePoint throttling."""
from __future__ import annotations

import socket
import time

import pytest
import requests

from tests.waiting import wait_until

from .helpers import APP_PASSWORD, CONTOSO, LOGIN, PASSWORD, contextinfo, ropc, sts_sign_in, wsignin

C = "contoso.onmicrosoft.com"
DISCOVERY = f"{LOGIN}/{CONTOSO}/v2.0/.well-known/openid-configuration"


def test_latency(sim, sim_session):
    sim.control.add_fault("entra.discovery", latencyMs=300)
    started = time.monotonic()
    assert sim_session.get(DISCOVERY).status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    sim_session.get(f"{LOGIN}/common/userrealm/a@{C}?api-version=1.0")
    assert time.monotonic() - started < 0.3


def test_429_with_retry_after_for_a_count(sim, sim_session):
    sim.control.add_fault("entra.token", status=429, retryAfter=7, count=2)
    form = {"grant_type": "password", "client_id": "1950a258-227b-4e31-a9cf-717495945fc2",
            "username": f"admin@{C}", "password": PASSWORD, "scope": "User.Read"}
    for _ in range(2):
        resp = sim_session.post(f"{LOGIN}/{CONTOSO}/oauth2/v2.0/token", data=form)
        assert resp.status_code == 429 and resp.headers["Retry-After"] == "7"
    assert sim_session.post(f"{LOGIN}/{CONTOSO}/oauth2/v2.0/token", data=form).status_code == 200
    counters = sim.control.counters()["entra.token"]
    assert counters["requests"] == 3 and counters["faults"] == 2 and counters["byStatus"] == {"429": 2, "200": 1}


def test_429_by_window_counts_down(sim, sim_session):
    sim.control.add_fault("graph", status=429, windowSeconds=30)
    resp = sim_session.get("https://graph.microsoft.com/v1.0/me")
    assert resp.status_code == 429 and 28 <= int(resp.headers["Retry-After"]) <= 30
    assert resp.json()["error"]["code"] == "TooManyRequests"


def test_rate_fails_every_other_request(sim, sim_session):
    sim.control.add_fault("entra.discovery", status=503, rate=0.5)
    statuses = [sim_session.get(DISCOVERY).status_code for _ in range(6)]
    assert statuses == [200, 503] * 3


def test_sdk_retries_through_a_transient_503(sim, sim_settings, sim_session):
    from azure.keyvault.secrets import SecretClient

    from shared.adapters.http_session import build_credential, build_transport
    from shared.config import Settings

    settings = Settings.from_env(sim_settings)
    client = SecretClient(settings.key_vault_uri, build_credential(settings, sim_session),
                          transport=build_transport(settings, sim_session))
    client.set_secret("warm", "up")
    sim.control.add_fault("keyvault", status=503, retryAfter=0, count=1)
    assert client.get_secret("warm").value == "up"
    assert sim.control.counters()["keyvault"]["byStatus"]["503"] == 1


def test_outage_503_spares_the_control_api(sim, sim_session):
    sim.control.set_outage("503", retry_after=5)
    resp = sim_session.get(DISCOVERY)
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "5"
    assert sim_session.get("https://demo.vault.azure.net/secrets?api-version=7.5").status_code == 503
    assert sim.control.health()["status"] == "ok"
    sim.control.clear_outage()
    assert sim_session.get(DISCOVERY).status_code == 200


def test_connection_reset(sim, sim_session):
    sim.control.add_fault("graph", action="reset", count=1)
    with pytest.raises(requests.ConnectionError):
        sim_session.get("https://graph.microsoft.com/v1.0/me")
    assert sim_session.get("https://graph.microsoft.com/v1.0/me").status_code == 401


def port_refuses(endpoint: str) -> bool:
    host, port = endpoint.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_outage_refused_then_back(sim, sim_session):
    sim.control.set_outage("refused", seconds=1)
    wait_until(lambda: port_refuses(sim.endpoint), timeout=0.9)  # closed once the control call is answered
    with pytest.raises(requests.ConnectionError):
        sim_session.get(DISCOVERY, timeout=2)

    def back():
        assert sim_session.get(DISCOVERY, timeout=2).status_code == 200

    wait_until(back, ignoring=(requests.ConnectionError,), interval=0.2)


def test_refused_needs_a_duration(sim):
    from devtools.m365sim import SimulatorControlError

    with pytest.raises(SimulatorControlError, match="outage.seconds"):
        sim.control.set_outage("refused")


def test_per_user_sharepoint_throttle(sim, sim_session):
    site = "https://contoso-admin.sharepoint.com"
    _, token = sts_sign_in(sim_session, f"mfa@{C}", APP_PASSWORD, site)
    wsignin(sim_session, site, token)
    sim.control.throttle_sharepoint_users(limit=3, window_seconds=60)
    assert [contextinfo(sim_session, site).status_code for _ in range(3)] == [200, 200, 200]
    throttled = contextinfo(sim_session, site)
    assert throttled.status_code == 429 and 55 <= int(throttled.headers["Retry-After"]) <= 60
    # another account is not affected (its sign-in, redirect and probe are its first 3 requests)
    other = requests.Session()
    other.mount("https://", sim_session.get_adapter("https://x"))
    other.verify, other.trust_env = sim_session.verify, False
    _, token = sts_sign_in(other, f"admin@{C}", PASSWORD, site)
    wsignin(other, site, token)
    assert contextinfo(other, site).status_code == 200


def test_faults_from_the_scenario_file(sim, sim_session):
    sim.control.set_faults({"rules": [{"endpoint": "entra.*", "status": 503, "count": 1}]})
    assert sim_session.get(DISCOVERY).status_code == 503
    assert sim.control.faults()["rules"] == []          # spent rules disappear
    assert ropc(sim_session, CONTOSO, f"admin@{C}", PASSWORD).get("access_token")


def test_bad_fault_rule_names_the_field(sim):
    from devtools.m365sim import SimulatorControlError

    with pytest.raises(SimulatorControlError, match=r"rule.status: 404 is not one of"):
        sim.control.add_fault("graph", status=404)
    with pytest.raises(SimulatorControlError, match="rule.endpoint"):
        sim.control.add_fault("exchange", status=503)


# --- hostile bodies (issue 12, point 6) --------------------------------------------------------

def require_hostile_bodies(sim, session) -> None:
    """Skip when the server does not answer with hostile bodies yet (devtools/m365sim/server.py
    must hand a verdict's ``hostile`` rule to :func:`devtools.m365sim.faults.respond`)."""
    from devtools.m365sim.faults import INVALID_UTF8

    sim.control.add_hostile("entra.discovery", "invalidUtf8", count=1)
    served = INVALID_UTF8 in session.get(DISCOVERY).content
    sim.control.clear_hostile()
    if not served:
        pytest.skip("m365sim's server does not apply hostile-body rules (server.py: faults.respond hook)")


def test_hostile_rules_are_checked_listed_and_cleared(sim):
    from devtools.m365sim import SimulatorControlError

    for bad in ({"kind": "laughs"}, {"megabytes": 0}, {"intervalMs": "1"}, {"colour": "red"}):
        with pytest.raises(SimulatorControlError) as info:
            sim.control.add_hostile("graph", **{"kind": "huge", **bad})
        assert info.value.status == 400 and list(bad)[0] in str(info.value)
    with pytest.raises(SimulatorControlError):
        sim.control.add_hostile("nowhere", "huge")
    snapshot = sim.control.add_hostile("sharepoint.*", "trickle", count=2, intervalMs=500)
    assert snapshot["hostile"] == [{"endpoint": "sharepoint.*", "kind": "trickle", "count": 2, "intervalMs": 500}]
    assert sim.control.clear_hostile()["hostile"] == []
    sim.control.add_hostile("graph", "huge")
    assert sim.control.clear_faults()["hostile"] == []


def test_billion_laughs_on_the_legacy_sts(sim, sim_session):
    from .helpers import rst_envelope

    require_hostile_bodies(sim, sim_session)
    sim.control.add_hostile("sharepoint.sts", "billionLaughs", count=1)

    def post():
        return sim_session.post(f"{LOGIN}/extSTS.srf", timeout=10,
                                data=rst_envelope(f"mfa@{C}", APP_PASSWORD, "https://contoso-admin.sharepoint.com"),
                                headers={"Content-Type": "application/soap+xml; charset=utf-8"})
    resp = post()
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("application/soap+xml")
    assert b"<!DOCTYPE" in resp.content and resp.content.count(b"&lol8;") == 10 and len(resp.content) < 2000
    assert b"<!DOCTYPE" not in post().content  # count=1: the next answer is the real one
    assert sim.control.counters()["sharepoint.sts"]["byStatus"]["hostile.billionLaughs"] == 1


def test_a_50_mb_body_with_its_length(sim, sim_session):
    require_hostile_bodies(sim, sim_session)
    sim.control.add_hostile("graph", "huge", count=1)
    with sim_session.get("https://graph.microsoft.com/v1.0/me", stream=True) as resp:
        assert resp.status_code == 200 and int(resp.headers["Content-Length"]) == 50 * 1024 * 1024
        assert len(resp.raw.read(1024 * 1024)) == 1024 * 1024  # it really comes


def test_invalid_utf8_in_the_endpoints_media_type(sim, sim_session):
    require_hostile_bodies(sim, sim_session)
    sim.control.add_hostile("entra.token", "invalidUtf8", status=400, count=1)
    resp = sim_session.post(f"{LOGIN}/{CONTOSO}/oauth2/v2.0/token", data={"grant_type": "password"})
    assert resp.status_code == 400 and resp.headers["Content-Type"] == "application/json; charset=utf-8"
    with pytest.raises(UnicodeDecodeError):
        resp.content.decode("utf-8")


def test_a_trickle_sends_one_byte_per_interval(sim, sim_session):
    require_hostile_bodies(sim, sim_session)
    sim.control.add_hostile("entra.token", "trickle", intervalMs=200, bytes=100, count=1)
    started = time.monotonic()
    with sim_session.post(f"{LOGIN}/{CONTOSO}/oauth2/v2.0/token", data={}, stream=True) as resp:
        assert int(resp.headers["Content-Length"]) == 100
        got = b"".join(resp.raw.read(1) for _ in range(5))
    assert got == b"     " and 0.7 <= time.monotonic() - started < 3
