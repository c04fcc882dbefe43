"""Account-pool use cases: read/replace the members, lease one, release it (with throttling report)."""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from shared.domain.errors import FieldError, InvalidInput, NotFound, PreconditionFailed, ProfileNotFound
from shared.domain.pool import (MAX_LEASE_SECONDS, MAX_MEMBERS, MAX_REST_SECONDS, PoolMember,
                                candidates, exhausted)
from shared.domain.ports import ProfileRepository
from shared.domain.profile import Kind, ServiceAccountProfile

log = logging.getLogger(__name__)
#: Rounds of "read members, try each candidate" before answering exhausted under contention.
LEASE_ROUNDS = 3


def is_healthy(profile: ServiceAccountProfile) -> bool:
    """A member is leasable unless its last Validation Test failed (never validated counts as healthy)."""
    lv = profile.last_validation
    return profile.kind is Kind.MFA and (lv is None or lv.status == "passed")


@dataclass
class PoolServices:
    pool: Any  # TablePoolRepository (or a fake with the same methods)
    profiles: ProfileRepository
    key_vault_uri: str
    default_lease_seconds: int
    clock: Callable[[], datetime]

    def _profiles(self, tenant_id: str, members: list[PoolMember]) -> dict[str, ServiceAccountProfile]:
        found = {}
        for m in members:
            try:
                found[m.profile_id] = self.profiles.get(tenant_id, m.profile_id)
            except ProfileNotFound:
                continue  # deleted since it joined: not leasable, shown as missing
        return found

    def get_pool(self, tenant_id: str) -> dict[str, Any]:
        now = self.clock()
        members = self.pool.members(tenant_id)
        profiles = self._profiles(tenant_id, members)
        out = []
        for m in members:
            p = profiles.get(m.profile_id)
            out.append({
                "profileId": m.profile_id, "username": p.username if p else None, "exists": p is not None,
                "healthy": bool(p and is_healthy(p)),
                "lastValidation": p.last_validation.to_dict() if p and p.last_validation else None,
                "leased": m.leased(now), "leasedUntil": m.leased_until.isoformat() if m.leased(now) else None,
                "resting": m.resting(now), "restUntil": m.rest_until.isoformat() if m.resting(now) else None,
                "lastLeasedAt": m.last_leased_at.isoformat() if m.last_leased_at else None,
                "throttleReports": m.throttle_reports})
        return {"tenantId": tenant_id, "members": out}

    def put_pool(self, tenant_id: str, body: Any) -> dict[str, Any]:
        ids = body.get("members") if isinstance(body, dict) else None
        if not isinstance(ids, list) or len(ids) > MAX_MEMBERS or not all(isinstance(i, str) for i in ids):
            raise InvalidInput([FieldError("members", "type", f"A list of at most {MAX_MEMBERS} profile ids.")])
        wanted = list(dict.fromkeys(i.lower() for i in ids))
        errors = []
        for index, pid in enumerate(wanted):
            try:
                profile = self.profiles.get(tenant_id, pid)
            except ProfileNotFound:
                errors.append(FieldError(f"members[{index}]", "notFound", f"No profile {pid} in this tenant."))
                continue
            if profile.kind is not Kind.MFA:
                errors.append(FieldError(f"members[{index}]", "notMfa",
                                         "Pool members must be MFA service account profiles (with app passwords)."))
        if errors:
            raise InvalidInput(errors, "The pool can only hold this tenant's MFA profiles.")
        current = {m.profile_id for m in self.pool.members(tenant_id)}
        for pid in current - set(wanted):
            self.pool.remove_member(tenant_id, pid)
        for pid in wanted:
            if pid not in current:
                self.pool.add_member(tenant_id, pid)
        return self.get_pool(tenant_id)

    def lease(self, tenant_id: str, body: Any, *, correlation_id: str) -> dict[str, Any]:
        seconds = self.default_lease_seconds
        if isinstance(body, dict) and body.get("leaseSeconds") is not None:
            seconds = body["leaseSeconds"]
            if not isinstance(seconds, int) or isinstance(seconds, bool) or not 1 <= seconds <= MAX_LEASE_SECONDS:
                raise InvalidInput([FieldError("leaseSeconds", "range", f"1 to {MAX_LEASE_SECONDS} seconds.")])
        for _ in range(LEASE_ROUNDS):
            now = self.clock()
            members = self.pool.members(tenant_id)
            profiles = self._profiles(tenant_id, members)
            healthy = {pid: is_healthy(p) for pid, p in profiles.items()}
            choices = candidates(members, healthy, now)
            if not choices:
                raise exhausted(members, healthy, now)
            for member in choices:
                lease_id = str(uuid.uuid4())
                try:
                    taken = self.pool.replace_member(tenant_id, member.lease(lease_id, now, seconds))
                except PreconditionFailed:
                    continue  # someone else leased or changed it: try the next one
                profile = profiles[member.profile_id]
                log.info("pool member leased", extra={"correlation_id": correlation_id, "tenant_id": tenant_id,
                                                      "profile_id": member.profile_id, "lease_id": lease_id})
                return {"leaseId": lease_id, "profileId": member.profile_id, "username": profile.username,
                        "secretRef": {"vaultUri": self.key_vault_uri, "name": profile.secret.name,
                                      "version": profile.secret.version} if profile.secret else None,
                        "expiresAt": taken.leased_until.isoformat()}
        members = self.pool.members(tenant_id)
        profiles = self._profiles(tenant_id, members)
        raise exhausted(members, {pid: is_healthy(p) for pid, p in profiles.items()}, self.clock())

    def release(self, tenant_id: str, lease_id: str, body: Any, *, correlation_id: str) -> dict[str, Any]:
        retry_after = None
        if isinstance(body, dict) and body.get("retryAfterSeconds") is not None:
            retry_after = body["retryAfterSeconds"]
            if not isinstance(retry_after, int) or isinstance(retry_after, bool) or not 0 <= retry_after <= MAX_REST_SECONDS:
                raise InvalidInput([FieldError("retryAfterSeconds", "range", f"0 to {MAX_REST_SECONDS} seconds.")])
        for _ in range(LEASE_ROUNDS):
            member = next((m for m in self.pool.members(tenant_id) if m.lease_id == lease_id), None)
            if member is None:
                raise NotFound("Lease", lease_id)
            try:
                released = self.pool.replace_member(tenant_id, member.release(self.clock(),
                                                                             retry_after_seconds=retry_after))
            except PreconditionFailed:
                continue
            log.info("pool member released", extra={"correlation_id": correlation_id, "tenant_id": tenant_id,
                                                    "profile_id": member.profile_id, "rest_seconds": retry_after})
            return {"leaseId": lease_id, "profileId": member.profile_id,
                    "restUntil": released.rest_until.isoformat() if released.resting(self.clock()) else None}
        raise PreconditionFailed()


