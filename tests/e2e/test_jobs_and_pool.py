"""Batch checks, scheduled revalidation and the account pool, on the local host with Azurite and the
simulator: exact counts under faults and redelivery, poison reflected, change-only publishing,
no double leases."""
import base64
import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests
from azure.storage.queue import QueueClient

from tests.fixtures.app import CONTOSO, unique
from tests.fixtures.local_host import LOCAL_KEY
from tests.waiting import wait_until

PW = "Demo-Passw0rd!"
WORK_QUEUE = "validation-requests"


def make_profiles(api, n, *, tenant, user="admin", password=PW, **extra):
    def one(_):
        r = api.post(f"/api/tenants/{tenant}/profiles", json={
            "name": unique("batch"), "username": f"{user}@contoso.onmicrosoft.com", "password": password, **extra})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(one, range(n)))


def wait_job(api, tenant, job_id, timeout=180):
    def finished():
        job = api.get(f"/api/tenants/{tenant}/validation-jobs/{job_id}").json()
        assert job["state"] in ("completed", "completedWithErrors"), job
        return job

    return wait_until(finished, timeout=timeout, interval=0.5)


def wait_work_queue_drained(azurite, timeout=60):
    """Until every message on the work queue (visible or in flight) has been processed and deleted."""
    queue = QueueClient.from_connection_string(azurite.connection_string, WORK_QUEUE)
    wait_until(lambda: queue.get_queue_properties().approximate_message_count == 0, timeout=timeout,
               interval=0.25, what="the validation-requests queue is empty")


def outcome_events(azurite, profile_ids):
    """Every outcome CloudEvent for these profiles (drains the queue, keeping others' messages)."""
    queue = QueueClient.from_connection_string(azurite.connection_string, "troubleshooting-outcomes")
    wanted, found = set(profile_ids), []
    for message in queue.receive_messages(messages_per_page=32, visibility_timeout=60):
        event = json.loads(base64.b64decode(message.content))
        if event["data"]["profileId"] in wanted:
            found.append(event)
            queue.delete_message(message)
    return found


def test_two_hundred_profile_job_is_exact_under_429_bursts_and_5xx(api, sim, azurite, assert_schema, tenant):
    ids = make_profiles(api, 200, tenant=tenant)
    sim.control.add_fault("entra.token", status=429, retryAfter=1, rate=0.15)
    sim.control.add_fault("graph", status=503, retryAfter=1, rate=0.05)
    r = api.post(f"/api/tenants/{tenant}/validation-jobs", json={"profileIds": ids})
    assert r.status_code == 202 and r.headers["Location"].endswith(r.json()["id"])
    assert_schema("Job", r.json())
    job = wait_job(api, tenant, r.json()["id"])
    assert_schema("Job", job)
    assert (job["total"], job["done"], job["passed"], job["failed"], job["errors"]) == (200, 200, 200, 0, 0), job
    assert job["throttled"] > 0 and job["percent"] == 100.0 and job["finishedAt"]
    events = outcome_events(azurite, ids)
    assert sorted(e["data"]["profileId"] for e in events) == sorted(ids)  # one event per profile


def test_redelivered_and_duplicated_messages_count_once(api, sim, azurite, tenant):
    ids = make_profiles(api, 10, tenant=tenant)
    wrong = make_profiles(api, 2, tenant=tenant, password="Wrong-Passw0rd!")
    r = api.post(f"/api/tenants/{tenant}/validation-jobs", json={"profileIds": ids + wrong})
    job_id = r.json()["id"]
    work = QueueClient.from_connection_string(azurite.connection_string, WORK_QUEUE)

    def send_copies(pids, correlation_id):
        for pid in pids:
            work.send_message(base64.b64encode(json.dumps({
                "v": 1, "tenantId": tenant, "profileId": pid, "jobId": job_id, "reason": "batch",
                "correlationId": correlation_id}).encode()).decode())

    send_copies(ids[:5] + wrong, "dup")  # duplicates sent while the originals are in flight
    job = wait_job(api, tenant, job_id)
    wait_work_queue_drained(azurite)
    events = outcome_events(azurite, ids + wrong)
    # A copy in flight at the same moment as its original may publish the same event again (the
    # same id: consumers drop it); every profile has its one outcome.
    assert len({e["id"] for e in events}) == 12 and len({e["data"]["profileId"] for e in events}) == 12
    send_copies(ids, "late")  # and redelivered after completion
    wait_work_queue_drained(azurite)  # the late copies have been processed (and deleted)
    again = api.get(f"/api/tenants/{tenant}/validation-jobs/{job_id}").json()
    for j in (job, again):
        assert (j["total"], j["done"], j["passed"], j["failed"]) == (12, 12, 10, 2)
        assert j["byMessageId"] == {"CHECK_MFA_OR_APP_PASSWORD": 2}
    assert sorted(f["profileIds"] for f in again["failures"])[0] == sorted(wrong)
    assert outcome_events(azurite, ids + wrong) == []  # late copies do not validate or publish again


def test_poison_messages_become_job_errors(api, sim, tenant):
    ids = make_profiles(api, 3, tenant=tenant)
    sim.control.add_fault("keyvault", status=503, retryAfter=1, windowSeconds=15)
    job_id = api.post(f"/api/tenants/{tenant}/validation-jobs", json={"profileIds": ids}).json()["id"]
    job = wait_job(api, tenant, job_id, timeout=120)
    assert job["state"] == "completedWithErrors" and job["errors"] == 3
    assert job["byMessageId"] == {"POISON_MESSAGE": 3}


def test_job_request_validation(api):
    r = api.post(f"/api/tenants/{CONTOSO}/validation-jobs", json={"all": True, "profileIds": [str(uuid.uuid4())]})
    assert r.status_code == 422
    r = api.post(f"/api/tenants/{CONTOSO}/validation-jobs", json={"profileIds": ["nope"]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "profileIds[0]"
    assert api.get(f"/api/tenants/{CONTOSO}/validation-jobs/{uuid.uuid4()}").status_code == 404


def test_scheduled_revalidation_publishes_only_changes(api, sim, azurite, app_host, tenant):
    """Revalidation runs over every tenant; this test looks at its own tenant's rows only."""
    stays_passed = make_profiles(api, 1, tenant=tenant)[0]
    starts_passing = make_profiles(api, 1, tenant=tenant, user="reader")[0]
    stays_failed = make_profiles(api, 1, tenant=tenant, password="Wrong-Passw0rd!")[0]
    ours = [stays_passed, starts_passing, stays_failed]
    for pid in ours:
        api.post(f"/api/tenants/{tenant}/profiles/{pid}/validate")
    outcome_events(azurite, ours)  # the manual runs' events
    from datetime import datetime, timedelta, timezone

    from azure.data.tables import TableClient, UpdateMode

    profiles = TableClient.from_connection_string(azurite.connection_string, "Profiles")
    for pid in ours:  # as if the manual runs were two days ago: older than REVALIDATION_MAX_AGE_HOURS
        profiles.update_entity({"PartitionKey": tenant, "RowKey": pid,
                                "LastValidationAt": datetime.now(timezone.utc) - timedelta(days=2)},
                               mode=UpdateMode.MERGE)
    sim.control.patch_user("reader@contoso.onmicrosoft.com", {"roles": ["SharePoint Administrator"]})

    fired = requests.post(f"{app_host.url}/admin/functions/scheduled_revalidation", json={"input": ""},
                          headers={"x-functions-key": LOCAL_KEY}, timeout=30)
    assert fired.status_code == 202

    def revalidated():
        latest = [api.get(f"/api/tenants/{tenant}/profiles/{pid}/validations").json()["items"][0] for pid in ours]
        assert [h["reason"] for h in latest] == ["scheduled"] * 3, latest
        return latest

    [job_id] = {h["jobId"] for h in wait_until(revalidated, timeout=120, interval=0.5)}  # the tenant's one job
    wait_job(api, tenant, job_id)
    events = []  # the one change is published; the job is complete, so the others have been decided

    def change_published():
        events.extend(outcome_events(azurite, ours))
        return any(e["data"]["profileId"] == starts_passing for e in events)

    wait_until(change_published, timeout=30, interval=0.25)
    events.extend(outcome_events(azurite, ours))
    assert [(e["data"]["profileId"], e["data"]["status"], e["data"]["reason"]) for e in events] == \
        [(starts_passing, "passed", "scheduled")]


def test_twenty_concurrent_leases_over_five_members_never_double_lease(api, tenant):
    members = make_profiles(api, 5, tenant=tenant, user="mfa", password="qwertyuiopasdfgh", mfaEnabled=True,
                            adminCenter={"mode": "custom", "url": "https://contoso-admin.sharepoint.com"})
    assert api.put(f"/api/tenants/{tenant}/account-pool", json={"members": members}).status_code == 200

    def lease(_):
        return api.post(f"/api/tenants/{tenant}/account-pool/leases", json={"leaseSeconds": 120})

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lease, range(20)))
    granted = [a.json() for a in answers if a.status_code == 201]
    refused = [a for a in answers if a.status_code != 201]
    assert sorted(g["profileId"] for g in granted) == sorted(members)
    assert all(a.status_code == 429 and int(a.headers["Retry-After"]) > 0 for a in refused) and len(refused) == 15
    assert all("password" not in json.dumps(g).lower() and g["secretRef"]["name"] for g in granted)

    rest = granted[0]
    r = api.delete(f"/api/tenants/{tenant}/account-pool/leases/{rest['leaseId']}", json={"retryAfterSeconds": 600})
    assert r.status_code == 200 and r.json()["restUntil"]
    for g in granted[1:]:
        api.delete(f"/api/tenants/{tenant}/account-pool/leases/{g['leaseId']}")
    pool_state = {m["profileId"]: m for m in api.get(f"/api/tenants/{tenant}/account-pool").json()["members"]}
    assert pool_state[rest["profileId"]]["resting"] and pool_state[rest["profileId"]]["throttleReports"] == 1
    next_four = {api.post(f"/api/tenants/{tenant}/account-pool/leases").json()["profileId"] for _ in range(4)}
    assert rest["profileId"] not in next_four and len(next_four) == 4
    assert api.post(f"/api/tenants/{tenant}/account-pool/leases").status_code == 429


def test_pool_rejects_common_profiles_and_skips_failing_members(api, tenant):
    common = make_profiles(api, 1, tenant=tenant)[0]
    r = api.put(f"/api/tenants/{tenant}/account-pool", json={"members": [common]})
    assert r.status_code == 422 and r.json()["errors"][0]["code"] == "notMfa"
