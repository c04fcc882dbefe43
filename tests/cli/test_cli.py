"""The operator CLI (``python -m cli``) run as a script runs it, in a subprocess, against the product
on the local host (Azurite and the Microsoft 365 simulator): output and exit codes of each command."""
from __future__ import annotations

import csv
import json
import subprocess
import uuid

from tests.demo import APP_PASSWORD, PASSWORD


def created(api, tenant, name, username="admin@contoso.onmicrosoft.com", password=PASSWORD, mfa=False):
    body = {"name": name, "username": username, "password": password, "mfaEnabled": mfa}
    if mfa:
        body["adminCenter"] = {"mode": "custom", "url": "https://contoso-admin.sharepoint.com"}
    r = api.post(f"/api/tenants/{tenant}/profiles", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def as_json(result: subprocess.CompletedProcess):
    return json.loads(result.stdout)


def test_create_from_csv_then_list_filter_search_and_export(cli, tmp_path):
    tag = uuid.uuid4().hex[:6]
    source = tmp_path / "profiles.csv"
    source.write_text("name,description,mfaEnabled,username,password,adminCenterMode,adminCenterUrl\n"
                      f"admin {tag},first,false,admin@contoso.onmicrosoft.com,{PASSWORD},,\n"
                      f"mfa {tag},,true,mfa@contoso.onmicrosoft.com,{APP_PASSWORD},custom,https://contoso-admin.sharepoint.com\n"
                      f"bad {tag},,true,mfa@contoso.onmicrosoft.com,{APP_PASSWORD},,\n"
                      f",,false,not-a-upn,x,,\n")
    made = cli("profiles", "create", str(source), "--json")
    assert made.returncode == 2, made.stderr  # some rows were refused
    report = as_json(made)
    assert (report["created"], report["refused"]) == (2, 2)
    refused = {r["row"]: {e["field"] for e in r["errors"]} for r in report["results"] if r["status"] == "refused"}
    assert "adminCenter.url" in refused[3] or "adminCenter" in " ".join(refused[3])
    assert {"name", "username"} <= refused[4]

    table = cli("profiles", "list")
    assert table.returncode == 0 and f"admin {tag}" in table.stdout and f"mfa {tag}" in table.stdout
    assert "never" in table.stdout
    mfa_only = as_json(cli("profiles", "list", "--kind", "mfa", "--json"))
    assert [p["name"] for p in mfa_only["items"]] == [f"mfa {tag}"]
    searched = as_json(cli("profiles", "list", "--search", "ADMIN@", "--json"))
    assert [p["name"] for p in searched["items"]] == [f"admin {tag}"]

    export = tmp_path / "export.csv"
    done = cli("profiles", "list", "--export", str(export))
    assert done.returncode == 0
    rows = list(csv.DictReader(export.open()))
    assert {r["name"]: r["kind"] for r in rows} == {f"admin {tag}": "common", f"mfa {tag}": "mfa"}
    assert all(r["lastStatus"] == "never" and "password" not in r for r in rows)
    assert cli("profiles", "list", "--kind", "nonsense").returncode == 2


def test_create_from_json(cli, tmp_path):
    source = tmp_path / "profiles.json"
    source.write_text(json.dumps([{"name": "from json", "username": "admin@contoso.onmicrosoft.com",
                                   "password": PASSWORD}]))
    made = cli("profiles", "create", str(source))
    assert made.returncode == 0, made.stderr
    assert "1 created, 0 refused" in made.stdout


def test_validate_one_shows_the_outcome_and_exit_codes(cli, api, tenant):
    good = created(api, tenant, "good")
    blocked = created(api, tenant, "blocked", "blocked@contoso.onmicrosoft.com")
    mfa = created(api, tenant, "mfa", "mfa@contoso.onmicrosoft.com", APP_PASSWORD, mfa=True)

    passed = cli("profiles", "validate", good["id"])
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "passed" in passed.stdout and "User role: Global Administrator" in passed.stdout

    failed = cli("profiles", "validate", blocked["id"])
    assert failed.returncode == 1
    assert "ACCESS_POLICY_BLOCKED" in failed.stdout and "  1. Delete or disable the access policies." in failed.stdout
    assert "aadstsCode=AADSTS53003" in failed.stdout and "correlationId=" in failed.stdout

    blank = as_json(cli("profiles", "validate", mfa["id"], "--json"))
    assert blank["status"] == "passed" and blank["userRole"] is None and blank["userRoleNote"]

    history = cli("profiles", "history", blocked["id"])
    assert history.returncode == 0 and "manual" in history.stdout and "ACCESS_POLICY_BLOCKED" in history.stdout
    assert as_json(cli("profiles", "history", good["id"], "--json"))["items"][0]["status"] == "passed"

    shown = cli("profiles", "show", mfa["id"])
    assert shown.returncode == 0 and "Limitation" in shown.stdout and "mfa@contoso.onmicrosoft.com" in shown.stdout
    assert as_json(cli("profiles", "show", mfa["id"], "--json"))["kind"] == "mfa"


def test_validate_many_runs_a_job_with_a_progress_bar_and_a_summary(cli, api, tenant):
    ids = [created(api, tenant, f"batch {i}")["id"] for i in range(4)]
    ids.append(created(api, tenant, "batch wrong", password="Wrong-Passw0rd!")["id"])
    run = cli("profiles", "validate", *ids, "--interval", "0.3")
    assert run.returncode == 1, run.stderr  # one of them failed
    assert "100%" in run.stderr and "5/5" in run.stderr  # the progress bar (on stderr)
    assert "completed" in run.stdout and "CHECK_MFA_OR_APP_PASSWORD" in run.stdout
    lines = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in run.stdout.splitlines()
             if line.count("│") == 3}
    assert lines["passed"] == "4" and lines["CHECK_MFA_OR_APP_PASSWORD"] == "1"


def test_jobs_start_and_watch(cli, api, tenant):
    for i in range(3):
        created(api, tenant, f"job {i}")
    started = as_json(cli("jobs", "start", "--all", "--no-watch", "--json"))
    assert started["total"] == 3
    watched = cli("jobs", "watch", started["id"], "--interval", "0.3", "--json")
    assert watched.returncode == 0, watched.stderr  # all passed
    job = as_json(watched)
    assert job["state"] == "completed" and job["passed"] == 3 and job["percent"] == 100

    again = cli("jobs", "start", "--status", "passed", "--interval", "0.3")
    assert again.returncode == 0 and "passed" in again.stdout and "3 of 3" in again.stdout
    filtered = as_json(cli("jobs", "start", "--search", "job 1", "--json", "--interval", "0.3"))
    assert filtered["total"] == 1 and filtered["passed"] == 1
    assert cli("jobs", "start").returncode == 2  # no selection
    assert cli("jobs", "watch", str(uuid.uuid4())).returncode == 2  # no such job


def test_pool_show_set_lease_release(cli, api, tenant):
    a = created(api, tenant, "pool a", "mfa@contoso.onmicrosoft.com", APP_PASSWORD, mfa=True)
    common = created(api, tenant, "pool common")
    assert "0 member(s)" in cli("pool", "show").stdout
    refused = cli("pool", "set", common["id"])
    assert refused.returncode == 2 and "HTTP 422" in refused.stderr  # only MFA profiles may be members
    assert as_json(cli("pool", "set", a["id"], "--json"))["members"][0]["profileId"] == a["id"]

    lease = as_json(cli("pool", "lease", "--seconds", "120", "--json"))
    assert lease["profileId"] == a["id"] and "password" not in json.dumps(lease).lower().replace("passwordset", "")
    busy = cli("pool", "lease")
    assert busy.returncode == 2 and "HTTP 429" in busy.stderr  # a busy pool: come back after Retry-After
    shown = cli("pool", "show")
    assert "until" in shown.stdout and "healthy" in shown.stdout
    released = cli("pool", "release", lease["leaseId"], "--retry-after", "60")
    assert released.returncode == 0 and "resting until" in released.stdout
    member = as_json(cli("pool", "show", "--json"))["members"][0]
    assert member["resting"] and not member["leased"] and member["throttleReports"] == 1


def test_reserved_ips_download(cli, tmp_path):
    target = tmp_path / "ips.csv"
    done = cli("reserved-ips", "download", "--output", str(target))
    assert done.returncode == 0
    assert target.read_text().splitlines() == ["cidr,ipVersion", "203.0.113.0/28,4", "198.51.100.16/29,4"]
    ranges = as_json(cli("reserved-ips", "download", "--json"))["ranges"]
    assert [r["cidr"] for r in ranges] == ["203.0.113.0/28", "198.51.100.16/29"]
    assert cli("reserved-ips", "download").stdout.startswith("cidr,ipVersion")


def test_usage_and_connection_errors_exit_2(cli, tenant):
    assert cli("profiles", "list", env={"M365_PROFILES_KEY": "wrong"}).returncode == 2
    unreachable = cli("profiles", "list", env={"M365_PROFILES_URL": "http://127.0.0.1:9"})
    assert unreachable.returncode == 2 and "Could not reach" in unreachable.stderr
    assert cli("profiles", "show", str(uuid.uuid4())).returncode == 2
    assert cli("profiles", "frobnicate").returncode == 2
    assert cli("profiles", "list", env={"M365_PROFILES_TENANT": ""}).returncode == 2
    assert cli("profiles", "migrate", str(uuid.uuid4())).returncode == 2  # no --client-id
