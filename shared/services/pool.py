"""Account-pool use cases: read/replace the members, lease one, release it (with throttling report)."""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from shared.domain.errors import FieldError, InvalidInput, NotFound, PreconditionFailed, ProfileNotFound
from shared.domain.pool import (Lease, MemberStatus, PoolMember, PoolStatus, Released, SecretLocation, candidates,
                                exhausted)
from shared.domain.ports import PoolRepository, ProfileRepository
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
    pool: PoolRepository
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

    def get_pool(self, tenant_id: str) -> PoolStatus:
        now = self.clock()
        members = self.pool.members(tenant_id)
        profiles = self._profiles(tenant_id, members)
        out = []
        for m in members:
            p = profiles.get(m.profile_id)
            out.append(MemberStatus(
                profile_id=m.profile_id, username=p.username if p else None, exists=p is not None,
                healthy=bool(p and is_healthy(p)), last_validation=p.last_validation if p else None,
                leased=m.leased(now), leased_until=m.leased_until if m.leased(now) else None,
                resting=m.resting(now), rest_until=m.rest_until if m.resting(now) else None,
                last_leased_at=m.last_leased_at, throttle_reports=m.throttle_reports))
        return PoolStatus(tenant_id, tuple(out))

    def put_pool(self, tenant_id: str, member_ids: list[str]) -> PoolStatus:
        """Replace the members (ids checked by the contract): each must be an MFA profile of this tenant."""
        wanted = list(dict.fromkeys(i.lower() for i in member_ids))
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

    def lease(self, tenant_id: str, *, lease_seconds: int | None = None, correlation_id: str) -> Lease:
        """Lease the least recently leased free member (PoolExhausted when none is free)."""
        seconds = lease_seconds or self.default_lease_seconds
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
                secret = profile.secret
                return Lease(lease_id=lease_id, profile_id=member.profile_id, username=profile.username,
                             secret_ref=SecretLocation(self.key_vault_uri, secret.name, secret.version) if secret else None,
                             expires_at=taken.leased_until)
        members = self.pool.members(tenant_id)
        profiles = self._profiles(tenant_id, members)
        raise exhausted(members, {pid: is_healthy(p) for pid, p in profiles.items()}, self.clock())

    def release(self, tenant_id: str, lease_id: str, *, retry_after_seconds: int | None = None,
                correlation_id: str) -> Released:
        """End a lease; ``retry_after_seconds`` (SharePoint throttled the account) rests the member."""
        retry_after = retry_after_seconds
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
            return Released(lease_id, member.profile_id,
                            released.rest_until if released.resting(self.clock()) else None)
        raise PreconditionFailed()


