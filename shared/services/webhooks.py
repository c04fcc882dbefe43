"""Signed CloudEvents from admin portals: verify, de-duplicate, dispatch.

Wire contract (also in the OpenAPI document):

- ``X-Portal-Id``: the portal's id; its HMAC key is the Key Vault secret ``webhook-{portalId}``.
- ``X-Signature-Timestamp``: Unix seconds when the portal signed the request.
- ``X-Signature``: ``sha256=<hex HMAC-SHA256(key, timestamp + "." + raw body)>``.
- Body: one CloudEvent 1.0 in structured JSON mode (``application/cloudevents+json``).

A timestamp outside the replay window, a portal not in the registry (``WEBHOOK_PORTALS``, no Key
Vault read), a bad signature or an event for a tenant the portal is not granted is 401, all with
the same terse text (the log has the reason). An event id seen before from the same portal is a
no-op (the first delivery's effect stands).
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from shared.domain import events
from shared.domain.errors import FieldError, InvalidInput, Unauthorized
from shared.domain.ports import WebhookEventLog
from shared.names import webhook_secret_name

log = logging.getLogger(__name__)

EVENT_PROFILE_UPSERTED, EVENT_PROFILE_DELETED, EVENT_VALIDATION_REQUESTED = (
    events.PROFILE_UPSERTED, events.PROFILE_DELETED, events.VALIDATION_REQUESTED)
EVENT_TYPES = events.PORTAL_EVENT_TYPES

_PORTAL_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def sign(key: str, timestamp: str, body: bytes) -> str:
    """The ``X-Signature`` value a portal sends (used by portals' SDKs and by our tests)."""
    mac = hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


#: What every refused delivery is told; the reason goes to the log only.
REFUSED = "The request is not signed by a portal this service knows."
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"sha256=[0-9a-fA-F]{64}")
#: Upper bounds of the key cache (portals) and of the uncached Key Vault reads per minute when
#: there is no portal registry; a registry makes an unknown portal cost no read at all.
KEY_CACHE_SIZE = 256
KEY_CACHE_SECONDS = 60.0
LOOKUPS_PER_MINUTE = 30

class _KeyCache:
    """Keys by portal, least recently used first out, each for :data:`KEY_CACHE_SECONDS`; an
    empty list (no secret) is cached too, so a registered portal without a key is not re-read."""

    def __init__(self, size: int, seconds: float):
        self.size, self.seconds = size, seconds
        self._items: OrderedDict[str, tuple[float, list[str]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, portal: str, now: float) -> list[str] | None:
        with self._lock:
            item = self._items.get(portal)
            if item is None or now - item[0] >= self.seconds:
                return None
            self._items.move_to_end(portal)
            return item[1]

    def put(self, portal: str, now: float, keys: list[str]) -> None:
        with self._lock:
            self._items[portal] = (now, keys)
            self._items.move_to_end(portal)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class WebhookReceiver:
    """Verify, de-duplicate and dispatch portal events.

    :param portals: the portal registry (``WEBHOOK_PORTALS``): portal id → the tenants its key may
        act for (None: every tenant). A portal not in it is refused without a Key Vault read. When
        the registry itself is None (tests, or no registry configured), any well-formed portal id
        is looked up, at most :data:`LOOKUPS_PER_MINUTE` uncached reads a minute.
    """

    get_keys: Callable[[str], list[str]]
    events: WebhookEventLog
    handlers: dict[str, Callable[[dict[str, Any], str], dict[str, Any]]]
    replay_window_seconds: int = 300
    clock: Callable[[], float] = time.time
    portals: Mapping[str, frozenset[str] | None] | None = None
    _keys: _KeyCache = field(default_factory=lambda: _KeyCache(KEY_CACHE_SIZE, KEY_CACHE_SECONDS))
    _lookups: list[float] = field(default_factory=list)

    def _refuse(self, reason: str, portal: str) -> Unauthorized:
        log.warning("webhook refused: %s", reason, extra={"portal_id": portal[:64], "reason": reason})
        return Unauthorized(REFUSED)

    def _portal_keys(self, portal_id: str) -> list[str]:
        """The portal's current keys (every enabled version of its secret, newest three), cached."""
        now = self.clock()
        cached = self._keys.get(portal_id, now)
        if cached is not None:
            return cached
        if self.portals is None:
            self._lookups[:] = [t for t in self._lookups if now - t < 60]
            if len(self._lookups) >= LOOKUPS_PER_MINUTE:
                raise self._refuse("key lookup budget spent", portal_id)
            self._lookups.append(now)
        keys = [k for k in self.get_keys(webhook_secret_name(portal_id)) if k]
        self._keys.put(portal_id, now, keys)
        return keys

    def verify(self, headers: dict[str, str], body: bytes) -> str:
        """Return the portal id, or raise :class:`Unauthorized` (one terse text; the reason is logged)."""
        portal = headers.get("x-portal-id", "")
        timestamp = headers.get("x-signature-timestamp", "")
        signature = headers.get("x-signature", "")
        if not _PORTAL_ID.fullmatch(portal) or not _TIMESTAMP.fullmatch(timestamp) \
                or not _SIGNATURE.fullmatch(signature):
            raise self._refuse("missing or malformed signature headers", portal)
        if abs(self.clock() - int(timestamp)) > self.replay_window_seconds:
            raise self._refuse("timestamp outside the replay window", portal)
        if self.portals is not None and portal not in self.portals:
            raise self._refuse("portal not registered", portal)
        keys = self._portal_keys(portal)
        if not keys:
            raise self._refuse("portal has no key", portal)
        signature = signature.lower()
        if not any(hmac.compare_digest(sign(key, timestamp, body), signature) for key in keys):
            raise self._refuse("signature does not match", portal)
        return portal

    def _check_tenant(self, portal: str, tenant_id: str) -> None:
        granted = self.portals.get(portal) if self.portals is not None else None
        if granted is not None and tenant_id.lower() not in granted:
            raise self._refuse("tenant not granted to the portal", portal)

    def receive(self, headers: dict[str, str], body: bytes, *, correlation_id: str) -> dict[str, Any]:
        """Verify, parse and dispatch one event. Returns ``{eventId, type, duplicate, result}``."""
        headers = {k.lower(): v for k, v in headers.items()}
        portal = self.verify(headers, body)
        event = parse_cloudevent(headers, body)
        self._check_tenant(portal, event.get_data()["tenantId"])
        event_id, event_type = event.get_id(), event.get_type()
        if not self.events.try_record(portal, event_id, event_type=event_type):
            log.info("duplicate webhook event ignored", extra={"correlation_id": correlation_id,
                                                               "portal_id": portal, "event_id": event_id})
            return {"eventId": event_id, "type": event_type, "duplicate": True}
        try:
            data = event.get_data()
            result = self.handlers[event_type](data if isinstance(data, dict) else {}, correlation_id)
        except Exception:
            self.events.forget(portal, event_id)
            raise
        log.info("webhook event processed", extra={"correlation_id": correlation_id, "portal_id": portal,
                                                   "event_id": event_id, "event_type": event_type})
        return {"eventId": event_id, "type": event_type, "duplicate": False, "result": result}


def parse_cloudevent(headers: dict[str, str], body: bytes):
    """A structured-mode CloudEvent 1.0, parsed by the CloudEvents SDK; 422 when it is not one."""
    from cloudevents.core.bindings.http import HTTPMessage, from_structured_event

    try:
        event = from_structured_event(HTTPMessage(headers={"content-type": "application/cloudevents+json"},
                                                  body=body))
    except Exception as exc:  # noqa: BLE001 - the SDK raises several types for a bad envelope
        raise InvalidInput([FieldError("", "cloudevent", f"Not a CloudEvents 1.0 JSON event: {exc}")]) from exc
    problems = []
    if event.get_specversion() != "1.0":
        problems.append(FieldError("specversion", "enum", "Must be 1.0."))
    if event.get_type() not in EVENT_TYPES:
        problems.append(FieldError("type", "enum", f"Must be one of {', '.join(EVENT_TYPES)}."))
    data = event.get_data()
    if not isinstance(data, dict) or not _GUID.fullmatch(str(data.get("tenantId", ""))):
        problems.append(FieldError("data.tenantId", "required", "data.tenantId must be a tenant GUID."))
    if problems:
        raise InvalidInput(problems, "The CloudEvent is not one this endpoint accepts.")
    return event


def profile_handlers(profiles, jobs=None) -> dict[str, Callable[[dict[str, Any], str], dict[str, Any]]]:
    """The handlers of the portal events, over the profile services (and the job services: a
    ``validation.requested`` event starts a batch job like ``POST .../validation-jobs``)."""
    from shared.contract.base import parse_value
    from shared.contract.jobs import JobRequest
    from shared.contract.profiles import AppProfileCreate, ProfileCreate, ProfilePatch
    from shared.domain.errors import ProfileNotFound
    from shared.domain.jobs import Reason
    from shared.domain.profile import profile_input

    def profile_id_of(data: dict[str, Any]) -> str:
        pid = str(data.get("profileId", ""))
        if not _GUID.fullmatch(pid):
            raise InvalidInput([FieldError("data.profileId", "required", "data.profileId must be a GUID.")])
        return pid.lower()

    def upserted(data: dict[str, Any], cid: str) -> dict[str, Any]:
        tenant, pid = data["tenantId"].lower(), profile_id_of(data)
        body = data.get("profile")
        app = isinstance(body, dict) and body.get("kind") == "app"

        def create():
            if app:  # an app profile: Key Vault generates its certificate (or imports the PFX)
                return parse_value(AppProfileCreate, body, prefix="data.profile").to_input()
            return profile_input(parse_value(ProfileCreate, body, prefix="data.profile").dump_form())

        def changes():
            patch = {k: v for k, v in body.items() if k != "kind"} if app else body
            return parse_value(ProfilePatch, patch, prefix="data.profile").changes()

        view, created = profiles.upsert_profile(tenant, pid, correlation_id=cid, create=create, changes=changes)
        return {"profileId": view.profile.id, "created": created, "etag": view.profile.etag}

    def deleted(data: dict[str, Any], cid: str) -> dict[str, Any]:
        tenant, pid = data["tenantId"].lower(), profile_id_of(data)
        try:
            profiles.delete_profile(tenant, pid, if_match="*", correlation_id=cid)
        except ProfileNotFound:
            return {"profileId": pid, "deleted": False}
        return {"profileId": pid, "deleted": True}

    def validation_requested(data: dict[str, Any], cid: str) -> dict[str, Any]:
        if jobs is None:
            raise InvalidInput([FieldError("type", "unsupported", "Validation requests are not enabled.")])
        tenant = data["tenantId"].lower()
        request = parse_value(JobRequest, {k: data[k] for k in ("profileIds", "all", "filter") if k in data},
                              prefix="data")
        job = jobs.create_job(tenant, request.selection(), correlation_id=cid, reason=Reason.WEBHOOK).job
        return {"jobId": job.id, "total": job.total, "location": f"/api/tenants/{tenant}/validation-jobs/{job.id}"}

    return {EVENT_PROFILE_UPSERTED: upserted, EVENT_PROFILE_DELETED: deleted,
            EVENT_VALIDATION_REQUESTED: validation_requested}
