"""The Microsoft 365 account pool (spec): several MFA accounts with app passwords per tenant,
handed out by lease so that SharePoint Online's per-account throttling is spread across them.

Choice rule: among members that are healthy (last validation not failed), not resting after a
throttling report and not under a live lease, the least recently leased one. When every member is
busy or resting the pool answers "exhausted" with the seconds until one frees up (the HTTP layer
turns that into 503 + ``Retry-After``): a caller never gets an account another caller holds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shared.domain.profile import LastValidation

MAX_MEMBERS = 50
MAX_LEASE_SECONDS = 3600
MAX_REST_SECONDS = 24 * 3600


@dataclass(frozen=True)
class PoolMember:
    profile_id: str
    lease_id: str | None = None
    leased_until: datetime | None = None
    last_leased_at: datetime | None = None
    rest_until: datetime | None = None
    throttle_reports: int = 0
    etag: str | None = None

    def leased(self, now: datetime) -> bool:
        return self.lease_id is not None and self.leased_until is not None and self.leased_until > now

    def resting(self, now: datetime) -> bool:
        return self.rest_until is not None and self.rest_until > now

    def busy_until(self, now: datetime) -> datetime | None:
        ends = [t for t in (self.leased_until if self.leased(now) else None,
                            self.rest_until if self.resting(now) else None) if t]
        return max(ends) if ends else None

    def lease(self, lease_id: str, now: datetime, seconds: int) -> "PoolMember":
        return replace(self, lease_id=lease_id, leased_until=now + timedelta(seconds=seconds), last_leased_at=now)

    def release(self, now: datetime, *, retry_after_seconds: int | None = None) -> "PoolMember":
        member = replace(self, lease_id=None, leased_until=None)
        if retry_after_seconds:
            member = replace(member, rest_until=now + timedelta(seconds=retry_after_seconds),
                             throttle_reports=self.throttle_reports + 1)
        return member


@dataclass(frozen=True)
class MemberStatus:
    """A member as an operator sees it now: its profile (if it still exists) and its state."""

    profile_id: str
    username: str | None
    exists: bool
    healthy: bool
    last_validation: LastValidation | None
    leased: bool
    leased_until: datetime | None
    resting: bool
    rest_until: datetime | None
    last_leased_at: datetime | None
    throttle_reports: int


@dataclass(frozen=True)
class PoolStatus:
    tenant_id: str
    members: tuple[MemberStatus, ...]


@dataclass(frozen=True)
class SecretLocation:
    vault_uri: str
    name: str
    version: str


@dataclass(frozen=True)
class Lease:
    """A member handed out: never its password, only where a caller with access reads it."""

    lease_id: str
    profile_id: str
    username: str
    secret_ref: SecretLocation | None
    expires_at: datetime


@dataclass(frozen=True)
class Released:
    lease_id: str
    profile_id: str
    rest_until: datetime | None


class PoolExhausted(Exception):
    """No member can be leased now; ``retry_after`` seconds until one is expected to free up."""

    def __init__(self, retry_after: int, reason: str):
        super().__init__(reason)
        self.retry_after = retry_after


def candidates(members: list[PoolMember], healthy: dict[str, bool], now: datetime) -> list[PoolMember]:
    """Members that may be leased now, best first (least recently leased)."""
    free = [m for m in members if healthy.get(m.profile_id, False) and not m.leased(now) and not m.resting(now)]
    epoch = datetime.min.replace(tzinfo=now.tzinfo)
    return sorted(free, key=lambda m: (m.last_leased_at or epoch, m.profile_id))


def exhausted(members: list[PoolMember], healthy: dict[str, bool], now: datetime) -> PoolExhausted:
    usable = [m for m in members if healthy.get(m.profile_id, False)]
    if not usable:
        return PoolExhausted(60, "No healthy member: every member's last Validation Test failed, or the pool is empty.")
    soonest = min(m.busy_until(now) or now for m in usable)
    return PoolExhausted(max(1, math.ceil((soonest - now).total_seconds())),
                         "Every healthy member is leased or resting after throttling.")
