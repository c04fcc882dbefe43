"""Signed CloudEvents from admin portals: verify, de-duplicate, dispatch.

Wire contract (also in the OpenAPI document):

- ``X-Portal-Id``: the portal's id; its HMAC key is the Key Vault secret ``webhook-{portalId}``.
- ``X-Signature-Timestamp``: Unix seconds when the portal signed the request.
- ``X-Signature``: ``sha256=<hex HMAC-SHA256(key, timestamp + "." + raw body)>``.
- Body: one CloudEvent 1.0 in structured JSON mode (``application/cloudevents+json``).

A timestamp outside the replay window, an unknown portal or a bad signature is 401. An event id
seen before from the same portal is a no-op (the first delivery's effect stands).
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

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


@dataclass
class WebhookReceiver:
    get_keys: Callable[[str], list[str]]
    events: WebhookEventLog
    handlers: dict[str, Callable[[dict[str, Any], str], dict[str, Any]]]
    replay_window_seconds: int = 300
    clock: Callable[[], float] = time.time
    _keys: dict[str, tuple[float, list[str]]] = field(default_factory=dict)

    def _portal_keys(self, portal_id: str) -> list[str]:
        """The portal's current keys (every enabled version of its secret), cached for a minute."""
        cached = self._keys.get(portal_id)
        if cached and self.clock() - cached[0] < 60:
            return cached[1]
        keys = self.get_keys(webhook_secret_name(portal_id))
        self._keys[portal_id] = (self.clock(), keys)
        return keys

    def verify(self, headers: dict[str, str], body: bytes) -> str:
        """Return the portal id, or raise :class:`Unauthorized` (the reason is logged, not returned)."""
        portal = headers.get("x-portal-id", "")
        timestamp = headers.get("x-signature-timestamp", "")
        signature = headers.get("x-signature", "")
        if not _PORTAL_ID.match(portal) or not timestamp.isdigit() or not signature.startswith("sha256="):
            raise Unauthorized("Missing or malformed signature headers.")
        if abs(self.clock() - int(timestamp)) > self.replay_window_seconds:
            log.warning("webhook outside replay window", extra={"portal_id": portal})
            raise Unauthorized("The signature timestamp is outside the accepted window.")
        keys = self._portal_keys(portal)
        if not any(hmac.compare_digest(sign(key, timestamp, body), signature) for key in keys if key):
            log.warning("webhook signature rejected", extra={"portal_id": portal})
            raise Unauthorized("The signature does not match.")
        return portal

    def receive(self, headers: dict[str, str], body: bytes, *, correlation_id: str) -> dict[str, Any]:
        """Verify, parse and dispatch one event. Returns ``{eventId, type, duplicate, result}``."""
        headers = {k.lower(): v for k, v in headers.items()}
        portal = self.verify(headers, body)
        event = parse_cloudevent(headers, body)
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
    if not isinstance(data, dict) or not _GUID.match(str(data.get("tenantId", ""))):
        problems.append(FieldError("data.tenantId", "required", "data.tenantId must be a tenant GUID."))
    if problems:
        raise InvalidInput(problems, "The CloudEvent is not one this endpoint accepts.")
    return event


def profile_handlers(profiles, jobs=None) -> dict[str, Callable[[dict[str, Any], str], dict[str, Any]]]:
    """The handlers of the portal events, over the profile services (and the job services: a
    ``validation.requested`` event starts a batch job like ``POST .../validation-jobs``)."""
    from shared.contract.base import parse_value
    from shared.contract.jobs import JobRequest
    from shared.contract.profiles import ProfileCreate, ProfilePatch
    from shared.domain.errors import ProfileNotFound
    from shared.domain.jobs import Reason
    from shared.domain.profile import profile_input

    def profile_id_of(data: dict[str, Any]) -> str:
        pid = str(data.get("profileId", ""))
        if not _GUID.match(pid):
            raise InvalidInput([FieldError("data.profileId", "required", "data.profileId must be a GUID.")])
        return pid.lower()

    def upserted(data: dict[str, Any], cid: str) -> dict[str, Any]:
        tenant, pid = data["tenantId"].lower(), profile_id_of(data)
        body = data.get("profile")
        view, created = profiles.upsert_profile(
            tenant, pid, correlation_id=cid,
            create=lambda: profile_input(parse_value(ProfileCreate, body, prefix="data.profile").dump_form()),
            changes=lambda: parse_value(ProfilePatch, body, prefix="data.profile").changes())
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
