"""Health, reserved IP addresses, the admin page and correlation ids, through HTTP."""
import csv
import io

import requests

from tests.fixtures.app import CONTOSO
from tests.waiting import wait_until


def test_health_reports_each_dependency_and_503_when_key_vault_is_down(app_host, sim, assert_schema):
    up = requests.get(f"{app_host.url}/api/health", timeout=30)
    assert up.status_code == 200 and up.json()["status"] == "healthy"
    assert_schema("Health", up.json())
    assert set(up.json()["dependencies"]) == {"table", "queue", "keyVault"}
    sim.control.add_fault("keyvault", status=503, retryAfter=1)
    down = requests.get(f"{app_host.url}/api/health", timeout=60)
    assert down.status_code == 503 and down.json()["dependencies"]["keyVault"]["status"] == "down"
    assert down.json()["dependencies"]["table"]["status"] == "up"


def test_reserved_ip_addresses_as_json_and_csv(api, assert_schema):
    j = api.get("/api/reserved-ip-addresses")
    assert_schema("ReservedIpAddresses", j.json())
    assert [r["cidr"] for r in j.json()["ranges"]] == ["203.0.113.0/28", "198.51.100.16/29"]
    for r in (api.get("/api/reserved-ip-addresses", params={"format": "csv"}),
              api.get("/api/reserved-ip-addresses", headers={"Accept": "text/csv"})):
        assert r.headers["Content-Type"].startswith("text/csv")
        assert r.headers["Content-Disposition"] == 'attachment; filename="reserved-ip-addresses.csv"'
        rows = list(csv.reader(io.StringIO(r.text)))
        assert rows == [["cidr", "ipVersion"], ["203.0.113.0/28", "4"], ["198.51.100.16/29", "4"]]


def test_admin_page_is_served_with_the_function_key(app_host, api):
    assert requests.get(f"{app_host.url}/api/admin", timeout=10).status_code == 401
    page = api.get("/api/admin")
    assert page.status_code == 200 and "Our organization uses multi-factor authentication" in page.text
    assert page.headers["x-correlation-id"]


def test_correlation_id_is_echoed_or_generated(api):
    given = api.get(f"/api/tenants/{CONTOSO}/profiles", headers={"x-correlation-id": "portal-req-42"})
    assert given.headers["x-correlation-id"] == "portal-req-42"
    generated = api.get(f"/api/tenants/{CONTOSO}/profiles", headers={"x-correlation-id": "bad value with spaces"})
    assert generated.headers["x-correlation-id"] != "bad value with spaces" and len(generated.headers["x-correlation-id"]) == 36


def test_log_lines_carry_structured_dimensions(api, app_host, tenant):
    api.post(f"/api/tenants/{tenant}/profiles", headers={"x-correlation-id": "dims-check-1"},
             json={"name": "dims " + __import__("uuid").uuid4().hex, "username": "admin@contoso.onmicrosoft.com",
                   "password": "Demo-Passw0rd!"})
    import json

    def created_lines():
        return [l for l in app_host.output.splitlines() if "profile created" in l and "dims-check-1" in l
                and tenant in l]

    wait_until(created_lines, timeout=5)  # the host's log is read from its pipe
    lines = created_lines()
    assert lines, app_host.output[-2000:]
    dims = json.loads(lines[-1][lines[-1].index("{"):])
    assert dims["correlation_id"] == "dims-check-1" and dims["tenant_id"] == tenant and dims["kind"] == "common"
