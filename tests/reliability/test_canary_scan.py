"""The canary flow (issue 12, point 7): every path that takes a secret runs with unique canary
passwords, then everything the product keeps or says is scanned for them: every entity of every
table in Azurite, every message of every queue (``-poison`` queues included; peeked, and read past
the peek limit where no function consumes the queue), every line the host logged and every response
body. 0 hits.

The scan is general: :func:`scan_storage` lists the tables and queues that exist, so a new table,
queue or profile kind is covered without a change here.
"""
from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field

import pytest
import requests

from shared.services.webhooks import sign
from tests.e2e.test_jobs_and_pool import wait_job
from tests.fixtures.app import Api, unique
from tests.fixtures.local_host import LOCAL_KEY
from tests.waiting import wait_until

CONTOSO_ADMIN = "https://contoso-admin.sharepoint.com"
PORTAL, PORTAL_KEY = "portal-e2e", "e2e-portal-signing-key"
PEEK_LIMIT = 32  # Azure Queue Storage peeks at most 32 messages


def canary(tag: str) -> str:
    return f"Cnry{tag}{uuid.uuid4().hex[:12]}!"


@dataclass
class Scan:
    texts: int = 0
    hits: list[tuple[str, str]] = field(default_factory=list)

    def look(self, where: str, text: str, canaries) -> None:
        self.texts += 1
        self.hits += [(where, c) for c in canaries if c in text]


def _decoded(content: str) -> str:
    try:
        return base64.b64decode(content, validate=True).decode("utf-8", "replace")
    except ValueError:
        return ""


def consumed_queues(host_url: str) -> set[str]:
    """The queues a function of the running host takes messages from (never read past a peek)."""
    listed = requests.get(host_url + "/admin/functions", headers={"x-functions-key": LOCAL_KEY}, timeout=30).json()
    return {b["queueName"] for fn in listed for b in fn["config"]["bindings"]
            if b.get("type") == "queueTrigger" and b.get("queueName")}


def scan_storage(connection_string: str, canaries, *, consumed: set[str]) -> Scan:
    """Every table entity and queue message in the storage account, searched for ``canaries``
    (as stored and base64-decoded). A queue no function consumes is read to its end (received with
    a few seconds' invisibility, never deleted); a consumed one is peeked (it is drained by then)."""
    from azure.data.tables import TableServiceClient
    from azure.storage.queue import QueueServiceClient

    scan = Scan()
    tables = TableServiceClient.from_connection_string(connection_string)
    for table in tables.list_tables():
        for entity in tables.get_table_client(table.name).list_entities():
            scan.look(f"table {table.name}", json.dumps(dict(entity), default=str), canaries)
    queues = QueueServiceClient.from_connection_string(connection_string)
    for queue in queues.list_queues():
        client = queues.get_queue_client(queue.name)
        messages = {m.id: m for m in client.peek_messages(max_messages=PEEK_LIMIT)}
        if queue.name not in consumed:  # read to the end: hidden for a second each, never deleted
            total = client.get_queue_properties().approximate_message_count
            for _ in range(total // 32 + 3):  # received ones stay hidden meanwhile: each call gets the next
                page = list(client.receive_messages(max_messages=32, visibility_timeout=5))
                messages.update((m.id, m) for m in page)
                if not page or len(messages) >= total:
                    break
        for message in messages.values():
            scan.look(f"queue {queue.name}", str(message.content) + "\n" + _decoded(str(message.content)), canaries)
    return scan


class RecordingApi(Api):
    """The API session that also keeps every response body it saw."""

    def __init__(self, base: str):
        super().__init__(base)
        self.bodies: list[str] = []

    def request(self, method, url, *args, **kwargs):
        response = super().request(method, url, *args, **kwargs)
        self.bodies.append(f"{method} {url} {response.status_code} {dict(response.headers)}\n{response.text}")
        return response


@pytest.fixture
def portal_key(app_settings):
    from shared.bootstrap import key_vault_client
    from shared.config import Settings

    key_vault_client(Settings.from_env(app_settings)).set_secret(f"webhook-{PORTAL}", PORTAL_KEY)


APP_ID = "c0ffee00-0000-4000-8000-000000000001"


def app_pfx(password: str) -> str:
    """A PKCS#12 file (base64) of a fresh self-signed certificate, protected by ``password``."""
    import base64
    from datetime import datetime, timedelta, timezone

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    from tests.fakes import make_certificate

    key, cert = make_certificate("CN=canary", datetime.now(timezone.utc) - timedelta(days=1), timedelta(days=90))
    return base64.b64encode(pkcs12.serialize_key_and_certificates(
        b"canary", key, cert, None, serialization.BestAvailableEncryption(password.encode()))).decode()


def test_no_canary_anywhere(app_host, azurite, sim, tenant, portal_key):
    canaries = {k: canary(k) for k in ("Common", "Mfa", "Form", "Rotated", "Converted", "Webhook", "FormMfa",
                                       "PfxPassword", "RotatedPfxPassword")}
    api = RecordingApi(app_host.url)
    base = f"/api/tenants/{tenant}"
    log_start = len(app_host.output)

    def create(name, **body):
        r = api.post(f"{base}/profiles", json={"name": unique(name), **body})
        assert r.status_code == 201, r.text
        return r.json()

    # profiles of each kind that takes a password: common (wrong password: a failure path) and MFA
    common = create("canary common", mfaEnabled=False, username="admin@contoso.onmicrosoft.com",
                    password=canaries["Common"])
    mfa = create("canary mfa", mfaEnabled=True, username="mfa@contoso.onmicrosoft.com", password=canaries["Mfa"],
                 adminCenter={"mode": "custom", "url": CONTOSO_ADMIN})
    for p in (common, mfa):
        assert api.post(f"{base}/profiles/{p['id']}/validate").json()["status"] == "failed"
    # the form Validation Test (stored nowhere), both paths, and a failing upstream
    assert api.post(f"{base}/validation-tests", json={"name": "f", "mfaEnabled": False, "username":
                    "admin@contoso.onmicrosoft.com", "password": canaries["Form"]}).status_code == 200
    sim.control.add_fault("sharepoint.sts", status=503, count=1)
    assert api.post(f"{base}/validation-tests", json={
        "name": "f", "mfaEnabled": True, "username": "mfa@contoso.onmicrosoft.com", "password": canaries["FormMfa"],
        "adminCenter": {"mode": "custom", "url": CONTOSO_ADMIN}}).json()["messageId"] == "SERVICE_UNAVAILABLE"
    # a job over both, the pool (a lease, or the busy answer)
    job = api.post(f"{base}/validation-jobs", json={"profileIds": [common["id"], mfa["id"]]})
    assert job.status_code == 202
    wait_job(api, tenant, job.json()["id"], timeout=120)
    assert api.put(f"{base}/account-pool", json={"members": [mfa["id"]]}).status_code == 200
    lease = api.post(f"{base}/account-pool/leases")
    assert lease.status_code in (201, 429)
    if lease.status_code == 201:
        assert api.delete(f"{base}/account-pool/leases/{lease.json()['leaseId']}").status_code == 200
    # password change, conversion (MFA off) with a new password, history
    etag = api.get(f"{base}/profiles/{common['id']}").headers["ETag"]
    r = api.patch(f"{base}/profiles/{common['id']}", json={"password": canaries["Rotated"]}, headers={"If-Match": etag})
    assert r.status_code == 200, r.text
    r = api.patch(f"{base}/profiles/{mfa['id']}", json={"mfaEnabled": False, "password": canaries["Converted"],
                                                        "adminCenter": {"mode": "default", "url": None}},
                  headers={"If-Match": api.get(f"{base}/profiles/{mfa['id']}").headers["ETag"]})
    assert r.status_code == 200 and r.json()["kind"] == "common", r.text
    api.get(f"{base}/profiles/{mfa['id']}/validations")
    # a webhook upsert carrying a password, then a bad one that echoes nothing
    pid = str(uuid.uuid4())
    body = json.dumps({"specversion": "1.0", "id": str(uuid.uuid4()), "source": f"/portals/{PORTAL}",
                       "type": "com.m365profiles.profile.upserted", "datacontenttype": "application/json",
                       "data": {"tenantId": tenant, "profileId": pid, "profile": {
                           "name": unique("canary webhook"), "username": "admin@contoso.onmicrosoft.com",
                           "password": canaries["Webhook"]}}}).encode()
    ts = str(int(time.time()))
    for signature in (sign(PORTAL_KEY, ts, body), "sha256=" + "0" * 64):
        api.post("/api/webhooks/admin-portal", data=body, headers={
            "content-type": "application/cloudevents+json", "X-Portal-Id": PORTAL, "X-Signature-Timestamp": ts,
            "X-Signature": signature})
    assert api.get(f"{base}/profiles/{pid}").status_code == 200
    # app profiles: a PFX imported with a canary password (and its own bytes as canaries), a wrong
    # password (a failure path), a rotation by PFX, a validation, the migration of a user profile
    pfx, pfx_rotated = app_pfx(canaries["PfxPassword"]), app_pfx(canaries["RotatedPfxPassword"])
    values_extra = [pfx[100:160], pfx_rotated[100:160]]
    app = create("canary app", kind="app", clientId=APP_ID,
                 certificate={"pfx": pfx, "password": canaries["PfxPassword"]})
    sim.control.add_app_certificate(APP_ID, pem=api.get(f"{base}/profiles/{app['id']}/certificate").text)
    assert api.post(f"{base}/profiles/{app['id']}/validate").json()["status"] == "passed"
    assert api.post(f"{base}/profiles", json={"name": unique("bad pfx"), "kind": "app", "clientId": APP_ID,
                                              "certificate": {"pfx": pfx, "password": canaries["Rotated"]}}
                    ).status_code == 422
    assert api.post(f"{base}/profiles/{app['id']}/certificate",
                    json={"pfx": pfx_rotated, "password": canaries["RotatedPfxPassword"]}).status_code == 200
    assert api.post(f"{base}/profiles/{common['id']}/migrate", json={"clientId": APP_ID}).status_code == 200
    assert api.post(f"{base}/profiles/{common['id']}/validate").status_code == 200
    # invalid input that carries a canary is refused without echoing it
    api.post(f"{base}/profiles", json={"name": "", "password": canaries["Common"], "mfaEnabled": "yes"})
    # delete them all
    for p in (common["id"], mfa["id"], pid, app["id"]):
        r = api.delete(f"{base}/profiles/{p}", headers={"If-Match": "*"})
        assert r.status_code == 204, r.text
    last = f"canary-last-{uuid.uuid4().hex[:8]}"
    api.get(f"{base}/profiles", headers={"x-correlation-id": last})
    wait_until(lambda: last in app_host.output, timeout=10, interval=0.1, what="the host's log of the last request")

    values = list(canaries.values()) + values_extra
    scan = scan_storage(azurite.connection_string, values, consumed=consumed_queues(app_host.url))
    logs = app_host.output[log_start:].splitlines()
    for line in logs:
        scan.look("log", line, values)
    for text in api.bodies:
        scan.look("response", text, values)
    print(f"canary scan: {len(values)} canaries, {len(api.bodies)} responses, {len(logs)} log lines, "
          f"{scan.texts} texts in all, {len(scan.hits)} hits")
    assert scan.hits == []
    assert len(api.bodies) > 20 and scan.texts > len(api.bodies) + len(logs)


def test_the_scan_finds_a_canary_wherever_it_is(azurite, app_host):
    """The scanner itself: a canary put in a new table, a queue (base64) and a -poison queue is found."""
    from azure.data.tables import TableServiceClient
    from azure.storage.queue import QueueServiceClient

    value = canary("Probe")
    name = "Scan" + uuid.uuid4().hex[:8]
    tables = TableServiceClient.from_connection_string(azurite.connection_string)
    table = tables.create_table(name)
    queues = QueueServiceClient.from_connection_string(azurite.connection_string)
    queue = queues.create_queue(f"scan-{uuid.uuid4().hex[:8]}-poison")
    try:
        table.create_entity({"PartitionKey": "p", "RowKey": "r", "note": f"x{value}x"})
        for _ in range(PEEK_LIMIT + 3):  # past the peek limit: read to the end
            queue.send_message("filler")
        queue.send_message(base64.b64encode(value.encode()).decode())
        scan = scan_storage(azurite.connection_string, [value], consumed=consumed_queues(app_host.url))
        assert {where for where, _ in scan.hits} == {f"table {name}", f"queue {queue.queue_name}"}
    finally:
        tables.delete_table(name)
        queues.delete_queue(queue.queue_name)
