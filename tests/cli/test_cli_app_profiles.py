"""App profiles from the operator CLI, in a subprocess against the local stack: ``profiles create-app``
(the simulator's demo-app.pfx, or a certificate Key Vault generates), ``profiles certificate``,
``profiles rotate`` and ``profiles migrate``, each with ``--json``, and the exit codes (0 done or
passed, 1 a failed validation, 2 usage, refusal or no answer).

The sign-in tests use contoso's own tenant id (the demo app registrations belong to it, and a client
assertion names the tenant it was made for); the others run in the test's own tenant alias.
"""
from __future__ import annotations

import json
import subprocess
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import pkcs12

from tests.demo import APP_PASSWORD, CONTOSO

APP1 = "c0ffee00-0000-4000-8000-000000000001"  # consented: Sites.FullControl.All + User.Read.All
APP2 = "c0ffee00-0000-4000-8000-000000000002"  # no consent
PFX_ENV = {"DEMO_PFX_PASSWORD": "demo", "M365_PROFILES_TENANT": CONTOSO}


def as_json(result: subprocess.CompletedProcess):
    assert result.stdout, result.stderr
    return json.loads(result.stdout)


def demo_thumbprint(sim) -> str:
    _, cert, _ = pkcs12.load_key_and_certificates((sim.state_dir / "demo-app.pfx").read_bytes(), b"demo")
    return cert.fingerprint(hashes.SHA1()).hex()


def create_app(cli, sim, client_id, name=None, *extra):
    name = name or "cli app " + uuid.uuid4().hex[:6]
    return cli("profiles", "create-app", "--name", name, "--client-id", client_id, "--pfx",
               str(sim.state_dir / "demo-app.pfx"), "--pfx-password-env", "DEMO_PFX_PASSWORD", *extra, env=PFX_ENV)


def mfa_profile(api, tenant, name):
    r = api.post(f"/api/tenants/{tenant}/profiles", json={
        "name": name, "username": "mfa@contoso.onmicrosoft.com", "password": APP_PASSWORD, "mfaEnabled": True,
        "adminCenter": {"mode": "custom", "url": "https://contoso-admin.sharepoint.com"}})
    assert r.status_code == 201, r.text
    return r.json()


def test_create_app_from_the_demo_pfx_then_validate_passes_with_the_granted_permissions(cli, sim):
    made = create_app(cli, sim, APP1, None, "--json")
    assert made.returncode == 0, made.stderr
    profile = as_json(made)
    assert profile["kind"] == "app" and profile["clientId"] == APP1 and profile["workload"] == "backup"
    assert profile["certificate"]["thumbprint"] == demo_thumbprint(sim)
    assert "demo" not in json.dumps(profile).replace("(demo)", "")  # the PFX password is not echoed

    passed = cli("profiles", "validate", profile["id"], env=PFX_ENV)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "Granted permissions: Microsoft Graph: Sites.FullControl.All, User.Read.All; SharePoint: " \
           "Sites.FullControl.All" in passed.stdout
    assert "Missing permissions: Microsoft Graph: none; SharePoint: none" in passed.stdout
    assert "day(s) left" in passed.stdout and "User role" not in passed.stdout
    outcome = as_json(cli("profiles", "validate", profile["id"], "--json", env=PFX_ENV))
    assert outcome["status"] == "passed" and outcome["grantedPermissions"]["graph"] == ["Sites.FullControl.All",
                                                                                       "User.Read.All"]

    listed = cli("profiles", "list", "--kind", "app", "--search", APP1, env=PFX_ENV)
    assert listed.returncode == 0 and profile["name"] in listed.stdout and APP1 in listed.stdout
    shown = cli("profiles", "show", profile["id"], env=PFX_ENV)
    assert shown.returncode == 0 and "Admin consent" in shown.stdout and "Client ID" in shown.stdout
    assert profile["certificate"]["thumbprint"].upper() in shown.stdout


def test_the_app_without_consent_exits_1_with_the_consent_url(cli, sim):
    made = create_app(cli, sim, APP2)
    assert made.returncode == 0, made.stderr
    consent = f"https://login.microsoftonline.com/{CONTOSO}/adminconsent?client_id={APP2}"
    assert f"Admin consent: {consent}" in made.stdout and "Next steps:" in made.stdout
    profile_id = made.stdout.split("(profile ", 1)[1].split(")", 1)[0]
    failed = cli("profiles", "validate", profile_id, env=PFX_ENV)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "APP_CONSENT_MISSING" in failed.stdout and consent in failed.stdout
    assert "Missing permissions: Microsoft Graph: Sites.FullControl.All, User.Read.All" in failed.stdout


def test_create_app_generated_certificate_download_pem_der_and_json(cli, tmp_path, api, tenant):
    made = cli("profiles", "create-app", "--name", "generated", "--client-id", APP1, "--workload", "governance",
               "--json")
    assert made.returncode == 0, made.stderr
    profile = as_json(made)
    assert profile["requiredPermissions"]["graph"] == ["Sites.Read.All", "User.Read.All", "Group.Read.All"]
    pem = cli("profiles", "certificate", profile["id"])
    assert pem.returncode == 0 and pem.stdout.startswith("-----BEGIN CERTIFICATE-----") and "PRIVATE" not in pem.stdout
    target = tmp_path / "app.cer"
    der = cli("profiles", "certificate", profile["id"], "--der", "-o", str(target))
    assert der.returncode == 0 and f"Wrote {target}" in der.stderr
    cert = x509.load_der_x509_certificate(target.read_bytes())
    assert cert.fingerprint(hashes.SHA1()).hex() == profile["certificate"]["thumbprint"]
    facts = as_json(cli("profiles", "certificate", profile["id"], "--json"))
    assert facts["format"] == "pem" and facts["pem"] == pem.stdout
    assert facts["certificate"]["thumbprint"] == profile["certificate"]["thumbprint"]

    user = mfa_profile(api, tenant, "not an app")
    assert cli("profiles", "certificate", user["id"]).returncode == 2  # 404: no certificate
    assert cli("profiles", "certificate", str(uuid.uuid4())).returncode == 2


def test_rotate_gives_a_new_certificate_and_keeps_the_previous_one(cli, sim):
    profile = as_json(cli("profiles", "create-app", "--name", "rotating", "--client-id", APP1, "--json"))
    rotated = as_json(cli("profiles", "rotate", profile["id"], "--json"))
    assert rotated["previousCertificate"]["thumbprint"] == profile["certificate"]["thumbprint"]
    assert rotated["certificate"]["thumbprint"] != profile["certificate"]["thumbprint"]
    again = cli("profiles", "rotate", profile["id"], "--pfx", str(sim.state_dir / "demo-app.pfx"),
                "--pfx-password-env", "DEMO_PFX_PASSWORD", env={"DEMO_PFX_PASSWORD": "demo"})
    assert again.returncode == 0, again.stderr
    assert demo_thumbprint(sim).upper() in again.stdout and "Previous certificate" in again.stdout
    assert "Upload the new public certificate" in again.stdout
    wrong = cli("profiles", "rotate", profile["id"], "--pfx", str(sim.state_dir / "demo-app.pfx"),
                "--pfx-password-env", "WRONG_PFX_PASSWORD", env={"WRONG_PFX_PASSWORD": "not-demo"})
    assert wrong.returncode == 2 and "certificate.pfx" in wrong.stderr and "not-demo" not in wrong.stderr


def test_migrate_prints_next_steps_certificate_url_and_consent_url(cli, api, tenant, app_host):
    first = mfa_profile(api, tenant, "migrate table")
    done = cli("profiles", "migrate", first["id"], "--client-id", APP1)
    assert done.returncode == 0, done.stderr
    assert "Migrated to an app profile:" in done.stdout and "Next steps:" in done.stdout
    assert f"Public certificate: {app_host.url}/api/tenants/{tenant}/profiles/{first['id']}/certificate" in done.stdout
    assert f"Admin consent: https://login.microsoftonline.com/{tenant}/adminconsent?client_id={APP1}" in done.stdout
    assert "Required permissions: Microsoft Graph: Sites.FullControl.All, User.Read.All" in done.stdout
    assert cli("profiles", "migrate", first["id"], "--client-id", APP1).returncode == 2  # already an app profile

    second = mfa_profile(api, tenant, "migrate json")
    result = as_json(cli("profiles", "migrate", second["id"], "--client-id", APP2, "--json"))
    assert result["profile"]["kind"] == "app" and result["profile"]["clientId"] == APP2
    assert result["nextSteps"] and result["adminConsentUrl"].endswith(f"client_id={APP2}")
    # the next steps are printed as the service words them, numbered in its order
    for n, step in enumerate(result["nextSteps"], start=1):
        assert f"  {n}. {step}" in done.stdout.splitlines()
    assert result["certificateUrl"] == f"/api/tenants/{tenant}/profiles/{second['id']}/certificate"
    shown = as_json(cli("profiles", "list", "--kind", "app", "--json"))
    assert {p["name"] for p in shown["items"]} == {"migrate table", "migrate json"}


def test_app_usage_errors_exit_2(cli, sim, tmp_path):
    pfx = str(sim.state_dir / "demo-app.pfx")
    assert cli("profiles", "create-app", "--name", "x").returncode == 2  # no --client-id
    bad = cli("profiles", "create-app", "--name", "x", "--client-id", "not-a-guid")
    assert bad.returncode == 2 and "clientId" in bad.stderr and "HTTP 422" in bad.stderr
    alone = cli("profiles", "create-app", "--name", "x", "--client-id", APP1, "--pfx-password-env", "P")
    assert alone.returncode == 2 and "--pfx-password-env belongs to --pfx" in alone.stderr
    unset = cli("profiles", "create-app", "--name", "x", "--client-id", APP1, "--pfx", pfx,
                "--pfx-password-env", "NOT_SET_ANYWHERE")
    assert unset.returncode == 2 and "NOT_SET_ANYWHERE" in unset.stderr
    missing = cli("profiles", "create-app", "--name", "x", "--client-id", APP1, "--pfx", str(tmp_path / "none.pfx"))
    assert missing.returncode == 2
    assert cli("profiles", "migrate", str(uuid.uuid4()), "--client-id", APP1).returncode == 2  # no such profile
    assert cli("profiles", "rotate", str(uuid.uuid4())).returncode == 2
