"""Scenario validation, the /_sim control API, counters, the sign-in log and the standalone runner."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from devtools.m365sim import DEMO_SCENARIO, ScenarioError, SimulatorControlError, load_scenario
from shared.config import Settings

from .helpers import CONTOSO, PASSWORD, ropc

C = "contoso.onmicrosoft.com"
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("text, message", [
    ("tenants: [{id: nope, domains: [a.com]}]", r"tenants\[0\]\.id: 'nope' does not match"),
    ("tenants:\n- id: 11111111-1111-4111-8111-111111111111\n  domains: [a.com]\n"
     "  users: [{upn: x@a.com, perUserMfa: sometimes}]",
     r"tenants\[0\]\.users\[0\]\.perUserMfa: 'sometimes' is not one of"),
    ("tenants:\n- id: 11111111-1111-4111-8111-111111111111\n  domains: [a.com]\n  users: [{upn: x@b.com}]",
     r"tenants\[0\]\.users\[0\]\.upn: x@b.com is not in a domain of this tenant"),
    ("tenants:\n- id: 11111111-1111-4111-8111-111111111111\n  domains: [a.com]\n  conditionalAccess:\n"
     "  - {name: p, grant: block, locations: {trustedRanges: [300.1.1.0/24]}}",
     r"conditionalAccess\[0\]\.locations\.trustedRanges\[0\]: '300.1.1.0/24' is not a 'cidr'"),
    ("tenants: []\nvaults: [{name: demo, allowedApps: [aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa]}]",
     r"vaults\[0\]\.allowedApps\[0\]: no app with clientId"),
    ("tenants: []\nsurprise: 1", r"\(top level\): Additional properties are not allowed \('surprise'"),
    ("tenants: [", r"not valid YAML/JSON at line"),
])
def test_bad_scenario_names_the_field(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=message) as info:
        load_scenario(path)
    assert str(info.value).startswith(str(path))


def test_missing_file(tmp_path):
    with pytest.raises(ScenarioError, match="cannot read the scenario file"):
        load_scenario(tmp_path / "nope.yaml")


def test_cli_rejects_a_bad_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tenants: [{id: 1, domains: []}]")
    proc = subprocess.run([sys.executable, "-m", "devtools.m365sim", "--scenario", str(bad), "--port", "0",
                           "--state-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "invalid scenario" in proc.stderr and "tenants[0]" in proc.stderr


def test_cli_runs_and_stops_on_sigterm(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "devtools.m365sim", "--port", "0", "--state-dir",
                             str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("m365sim listening on https://127.0.0.1:")
        assert f"(CA: {tmp_path / 'ca.pem'})" in first
        assert (tmp_path / "ca.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0 and "m365sim stopped" in out


def test_settings_env_feeds_the_product_settings(m365sim):
    env = m365sim.settings_env()
    settings = Settings.from_env(dict(env, AzureWebJobsStorage="UseDevelopmentStorage=true"))
    assert settings.cloud == "local" and settings.local_cloud_endpoint == m365sim.endpoint
    assert settings.azure_tenant_id == "00000000-0000-4000-8000-0000000000aa"
    assert settings.azure_client_id == "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
    assert settings.key_vault_uri == "https://demo.vault.azure.net/"
    assert settings.m365_client_id == "1950a258-227b-4e31-a9cf-717495945fc2"
    assert Path(settings.local_cloud_ca_bundle) == m365sim.ca_path


def test_counters_and_sign_in_log(sim, sim_session):
    sim.control.clear_counters()
    sim.control.clear_signins()
    ropc(sim_session, CONTOSO, f"admin@{C}", PASSWORD)
    ropc(sim_session, CONTOSO, f"admin@{C}", "wrong")
    sim_session.headers["x-sim-client-ip"] = "198.51.100.9"
    ropc(sim_session, CONTOSO, f"blocked@{C}", PASSWORD)
    counters = sim.control.counters()
    assert counters["entra.token"]["requests"] == 3 and counters["entra.token"]["byStatus"] == {"200": 1, "400": 2}
    assert counters["entra.discovery"]["requests"] == 3 and counters["entra.userrealm"]["requests"] == 3
    log = sim.control.signins(f"admin@{C}")
    assert [(e["path"], e["result"], e["errorCode"], e["clientIp"]) for e in log] == [
        ("ropc", "success", None, "203.0.113.5"), ("ropc", "failure", 50126, "203.0.113.5")]
    assert all(e["time"].endswith("Z") and e["tenantId"] == CONTOSO for e in log)
    blocked = sim.control.signins(f"blocked@{C}")[-1]
    assert blocked["clientIp"] == "198.51.100.9" and blocked["errorCode"] == 53003
    assert {"name": "Block sign-in outside trusted locations", "result": "failure"}.items() <= \
        next(p for p in blocked["conditionalAccess"] if p["grant"] == "block").items()


def test_invalid_patch_is_refused_and_names_the_field(sim):
    with pytest.raises(SimulatorControlError, match=r"users\[\d+\]\.state: 'frozen' is not one of") as info:
        sim.control.patch_user(f"admin@{C}", {"state": "frozen"})
    assert info.value.status == 400
    assert next(u for t in sim.control.scenario()["tenants"] for u in t["users"]
                if u["upn"] == f"admin@{C}")["state"] == "active"
    with pytest.raises(SimulatorControlError) as info:
        sim.control.patch_user("ghost@contoso.onmicrosoft.com", {"state": "locked"})
    assert info.value.status == 404


def test_reset_restores_the_start_scenario(sim, sim_session):
    sim.control.patch_user(f"admin@{C}", {"state": "disabled"})
    sim.control.add_fault("graph", status=503)
    sim.control.reset()
    assert "access_token" in ropc(sim_session, CONTOSO, f"admin@{C}", PASSWORD)
    assert sim.control.faults()["rules"] == [] and sim.control.signins() != []


def test_load_replaces_the_scenario_and_users_can_be_added(sim, sim_session):
    sim.control.load_scenario(DEMO_SCENARIO)
    sim.control.add_user(C, {"upn": f"new@{C}", "password": "N3w-Passw0rd!", "roles": ["Global Administrator"]})
    assert "access_token" in ropc(sim_session, CONTOSO, f"new@{C}", "N3w-Passw0rd!")
    sim.control.add_policy(C, {"name": "Block new", "users": {"include": [f"new@{C}"]}, "grant": "block"})
    assert ropc(sim_session, CONTOSO, f"new@{C}", "N3w-Passw0rd!")["error_codes"] == [53003]
    sim.control.delete_policy(C, "Block new")
    sim.control.delete_user(f"new@{C}")
    assert ropc(sim_session, CONTOSO, f"new@{C}", "N3w-Passw0rd!")["error_codes"] == [50034]
    with pytest.raises(SimulatorControlError, match="tenants"):
        sim.control.load_scenario({"tenants": "nope"})


def test_unknown_control_route(sim, sim_session):
    resp = sim_session.get(f"https://{sim.endpoint}/_sim/nothing")
    assert resp.status_code == 404


def test_a_tenant_alias_signs_in_to_the_tenant_it_names_until_removed(sim, sim_session):
    import uuid

    from .helpers import FABRIKAM, LOGIN

    alias, other = str(uuid.uuid4()), str(uuid.uuid4())
    assert sim.control.add_tenant_alias(alias, C) == CONTOSO
    assert sim.control.add_tenant_alias(other.upper(), FABRIKAM) == FABRIKAM
    assert sim.control.tenant_aliases() == {alias: CONTOSO, other: FABRIKAM}
    token = ropc(sim_session, alias, f"admin@{C}", PASSWORD)
    assert "access_token" in token and token["id_token_claims"]["tid"] == CONTOSO  # the tenant's own id
    assert ropc(sim_session, alias, f"blocked@{C}", PASSWORD)["error_codes"] == [53003]  # its policies
    assert ropc(sim_session, other, f"admin@{C}", PASSWORD)["error_codes"] == [50034]  # not fabrikam's user
    discovery = sim_session.get(f"{LOGIN}/{alias}/v2.0/.well-known/openid-configuration").json()
    assert discovery["issuer"] == f"{LOGIN}/{CONTOSO}/v2.0"  # as when addressed by a domain
    sim.control.patch_tenant(alias, {"name": "Contoso via alias"})  # the control API resolves it too
    assert next(t for t in sim.control.scenario()["tenants"] if t["id"] == CONTOSO)["name"] == "Contoso via alias"

    sim.control.remove_tenant_alias(alias)
    gone = sim_session.get(f"{LOGIN}/{alias}/v2.0/.well-known/openid-configuration")
    assert gone.status_code == 400 and gone.json()["error_codes"] == [90002]
    with pytest.raises(SimulatorControlError) as info:
        sim.control.remove_tenant_alias(alias)
    assert info.value.status == 404
    sim.control.reset()
    assert sim.control.tenant_aliases() == {}


@pytest.mark.parametrize("alias, tenant, status, message", [
    ("not-a-guid", CONTOSO, 400, "is not a GUID"),
    (CONTOSO, "fabrikam.onmicrosoft.com", 400, "already the id of a tenant"),
    ("99999999-9999-4999-8999-999999999999", "nowhere.onmicrosoft.com", 404, "no tenant"),
])
def test_a_bad_tenant_alias_is_refused(sim, alias, tenant, status, message):
    with pytest.raises(SimulatorControlError, match=message) as info:
        sim.control.add_tenant_alias(alias, tenant)
    assert info.value.status == status and sim.control.tenant_aliases() == {}
